"""Property tests: mutated manifests and image archives give a correct result or one clear error, never a
traceback or a hang. ELF files have their own in test_elf_fuzz.py.

Deterministic (derandomize, no example database) and bounded, so they run inside `make test`.
"""
from __future__ import annotations

import hashlib
import io
import json
import signal
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _manifest
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import OciError, read_archive

BOUNDED = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SHA = "ab" * 32
ELF = {"machine": "x86_64", "glibc_required": "2.35", "glibcxx_required": None, "needed": ["libc.so.6"]}
BUILD = {"link_mode": "static_stdlib", "swift_version": "6.3.1", "fingerprint": "f",
         "products": {"api": {"sha256": SHA, "resources": [], "backtracer": None, "debug_file": "api.debug",
                              "elf": ELF}}}
BAG = {"scope": "all", "architecture": "x86_64", "executables": ["api"], "fingerprint": "f",
       "files": [{"path": "bin/api", "sha256": SHA, "size": 1, "kind": "executable"}],
       "links": [{"path": "lib/libx.so", "target": "libx.so.1"}], "launch": {"api": ["lib/ld.so", "bin/api"]}}

# Any JSON value: what a crafted manifest may put where a field is expected.
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
PATHS = st.sampled_from(["..", "../x", "/etc/shadow", "a/../../b", "", "a\0b", "ok", "bin/api", "./x"]) | st.text()


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def bounded(call, seconds=5):
    """call() within `seconds`, or the test fails as a hang."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return call()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def mutate(document, path, value):
    """document with the value at the key path replaced (or added)."""
    doc = json.loads(json.dumps(document))
    node = doc
    for key in path[:-1]:
        node = node[key] if isinstance(node, dict) or (isinstance(key, int) and key < len(node)) else node
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node)):
        node[path[-1]] = value
    return doc


def one_sentence(exc):
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


BUILD_FIELDS = [("link_mode",), ("products",), ("products", "api"), ("products", "api", "sha256"),
                ("products", "api", "resources"), ("products", "api", "debug_file"), ("products", "api", "elf"),
                ("products", "api", "elf", "needed"), ("products", "api", "elf", "machine"), ("swift_version",)]
BAG_FIELDS = [("scope",), ("executables",), ("files",), ("files", 0), ("files", 0, "path"), ("files", 0, "size"),
              ("files", 0, "kind"), ("links",), ("links", 0, "path"), ("links", 0, "target"), ("launch",),
              ("launch", "api"), ("architecture",)]


def _read(tmp_path, name, document, reader):
    (tmp_path / name).write_text(json.dumps(document))
    try:
        return bounded(lambda: reader(str(tmp_path)))
    except _manifest.ManifestError as exc:
        return one_sentence(exc)


@BOUNDED
@given(field=st.sampled_from(BUILD_FIELDS), value=JSON | PATHS)
def test_mutated_build_manifest_is_read_or_refused_in_one_sentence(tmp_path, field, value):
    result = _read(tmp_path, _manifest.BUILD_MANIFEST, mutate(BUILD, field, value), _manifest.read_build)
    if isinstance(result, dict):  # accepted: then every product name is a plain file name
        assert all("/" not in name and name not in ("", ".", "..") for name in result["products"])


@BOUNDED
@given(field=st.sampled_from(BAG_FIELDS), value=JSON | PATHS)
def test_mutated_bag_manifest_is_read_or_refused_in_one_sentence(tmp_path, field, value):
    result = _read(tmp_path, _manifest.BAG_MANIFEST, mutate(BAG, field, value), _manifest.read_bag)
    if isinstance(result, dict):  # accepted: then no path leaves the bag
        for item in result["files"] + result["links"]:
            assert not item["path"].startswith("/") and ".." not in item["path"].split("/")


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _archive(manifest, config, layer, extra_name=None):
    """A docker-save style archive in memory: manifest.json, the config, one layer."""
    config_bytes = json.dumps(config).encode() if not isinstance(config, bytes) else config
    members = [("manifest.json", json.dumps(manifest).encode()), (_sha(config_bytes) + ".json", config_bytes),
               (_sha(layer) + "/layer.tar", layer)]
    if extra_name and "\0" not in extra_name:
        members.append((extra_name, b"x"))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


LAYER = b"layer"
CONFIG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + _sha(LAYER)]},
          "config": {"User": "65532:65532", "Entrypoint": ["/app/x"], "ExposedPorts": {"8080/tcp": {}}}}


def _manifest_for(config):
    return [{"Config": _sha(json.dumps(config).encode()) + ".json", "RepoTags": ["x:1"],
             "Layers": [_sha(LAYER) + "/layer.tar"]}]


def _describe(tmp_path, data):
    path = tmp_path / "image.tar"
    path.write_bytes(data)
    try:
        return bounded(lambda: read_archive(str(path)))
    except OciError as exc:
        return one_sentence(exc)


def test_the_sound_archive_is_described(tmp_path):
    info = _describe(tmp_path, _archive(_manifest_for(CONFIG), CONFIG, LAYER))
    assert isinstance(info, dict) and info["machine"] == "x86_64" and info["repo_tags"] == ["x:1"], info


CONFIG_FIELDS = [("architecture",), ("os",), ("rootfs",), ("rootfs", "diff_ids"), ("config",), ("config", "User"),
                 ("config", "Entrypoint"), ("config", "ExposedPorts"), ("config", "Labels")]
MANIFEST_FIELDS = [(0,), (0, "Config"), (0, "RepoTags"), (0, "Layers")]


@BOUNDED
@given(field=st.sampled_from(CONFIG_FIELDS), value=JSON)
def test_mutated_archive_config_is_described_or_refused_in_one_sentence(tmp_path, field, value):
    config = mutate(CONFIG, field, value)
    _describe(tmp_path, _archive(_manifest_for(config), config, LAYER))


@BOUNDED
@given(field=st.sampled_from(MANIFEST_FIELDS), value=JSON | PATHS, extra=st.none() | PATHS)
def test_mutated_archive_manifest_is_described_or_refused_in_one_sentence(tmp_path, field, value, extra):
    _describe(tmp_path, _archive(mutate(_manifest_for(CONFIG), field, value), CONFIG, LAYER, extra_name=extra))


@BOUNDED
@given(cut=st.integers(min_value=0, max_value=4000), flip=st.integers(min_value=0, max_value=4000),
       byte=st.integers(min_value=0, max_value=255))
def test_damaged_archive_bytes_are_described_or_refused_in_one_sentence(tmp_path, cut, flip, byte):
    data = bytearray(_archive(_manifest_for(CONFIG), CONFIG, LAYER))
    if flip < len(data):
        data[flip] = byte
    _describe(tmp_path, bytes(data[:len(data) - cut] if cut < len(data) else data))
