"""_release_oci: what a host accepts from a registry. Every layer and manifest here is hostile or broken on purpose."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _oci, _release_oci
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import OciError


def layer(tmp_path, *members):
    """A gzip tar of (name, kind, payload) members: kind file (payload bytes), dir, symlink (payload target),
    hardlink, fifo or device."""
    path = tmp_path / "layer.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size, info.mode = len(payload), 0o755
                archive.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE, "device": tarfile.CHRTYPE}[kind]
            info.linkname = payload or ""
            archive.addfile(info)
    return path


def test_a_release_layer_is_extracted_with_its_links(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    blob = layer(tmp_path, ("lib", "dir", None), ("lib/libfoo.so.1.0", "file", b"elf"),
                 ("lib/libfoo.so.1", "symlink", "libfoo.so.1.0"), ("bin/app", "file", b"#!/bin/sh\n"))
    _release_oci.extract(str(blob), str(staging))
    assert (staging / "lib" / "libfoo.so.1").resolve() == (staging / "lib" / "libfoo.so.1.0").resolve()
    assert (staging / "bin" / "app").read_bytes() == b"#!/bin/sh\n"
    assert (staging / "bin" / "app").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize(("members", "needle"), [
    ([("../evil", "file", b"x")], "a path outside the release"),
    ([("/etc/cron.d/evil", "file", b"x")], "a path outside the release"),
    ([("a/../../evil", "file", b"x")], "a path outside the release"),
    ([("passwd", "symlink", "/etc/passwd")], "leads outside the release"),
    ([("up", "symlink", "../../etc")], "leads outside the release"),
    ([("sub", "dir", None), ("d", "symlink", "sub"), ("d/file", "file", b"x")], "writes below d, a symbolic link"),
    ([("x", "file", b"x"), ("hard", "hardlink", "x")], "a hard link"),
    ([("pipe", "fifo", None)], "a FIFO"),
    ([("null", "device", None)], "a device"),
    ([("x", "dir", None), ("x", "file", b"y")], "as a file and as a directory"),
], ids=["dotdot", "absolute", "climbing", "absolute-link", "climbing-link", "below-a-link", "hardlink", "fifo",
        "device", "file-over-dir"])
def test_a_hostile_layer_is_refused_in_one_sentence(tmp_path, members, needle):
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(OciError) as refused:
        _release_oci.extract(str(layer(tmp_path, *members)), str(staging))
    assert needle in str(refused.value)
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_a_damaged_layer_is_one_error(tmp_path):
    blob = tmp_path / "broken.tar.gz"
    blob.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(OciError, match="could not extract a layer of the release"):
        _release_oci.extract(str(blob), str(staging))


def manifest(**changes) -> bytes:
    document = {"schemaVersion": 2, "mediaType": _oci.MEDIA_MANIFEST, "artifactType": _release_oci.ARTIFACT_TYPE,
                "config": {"mediaType": _release_oci.MEDIA_CONFIG, "digest": "sha256:" + "0" * 64, "size": 2},
                "layers": [{"mediaType": _oci.MEDIA_LAYER, "digest": "sha256:" + "1" * 64, "size": 10}]}
    document.update(changes)
    return json.dumps(document).encode()


def test_a_manifest_is_used_only_when_its_digest_is_the_one_asked_for():
    body = manifest()
    assert _release_oci._check_manifest(body, _oci.digest_of(body))[0]["size"] == 10
    with pytest.raises(OciError, match="whose digest is sha256:.*not the sha256:2222"):
        _release_oci._check_manifest(body, "sha256:" + "2" * 64)


@pytest.mark.parametrize("changes", [
    {"artifactType": "application/vnd.oci.image.config.v1+json"},
    {"layers": []},
    {"layers": [{"mediaType": _oci.MEDIA_LAYER, "digest": "sha256:" + "1" * 64, "size": 10}] * 3},
    {"layers": [{"mediaType": _oci.MEDIA_LAYER, "digest": "md5:abc", "size": 10}]},
    {"layers": [{"mediaType": _oci.MEDIA_LAYER, "digest": "sha256:" + "1" * 64, "size": -1}]},
    {"layers": [{"mediaType": "application/x-evil", "digest": "sha256:" + "1" * 64, "size": 1}]},
], ids=["an-image", "no-layers", "too-many-layers", "bad-digest", "negative-size", "other-media-type"])
def test_a_manifest_that_is_not_a_release_is_refused(changes):
    body = manifest(**changes)
    with pytest.raises(OciError, match="is not a swiftlinux release"):
        _release_oci._check_manifest(body, _oci.digest_of(body))


@pytest.mark.parametrize("reference", ["api@sha256:" + "0" * 64, "127.0.0.1:5000/api:1",
                                       "127.0.0.1:5000/Api@sha256:" + "0" * 64, "127.0.0.1:5000/api@sha256:00"])
def test_a_pull_reference_must_name_a_registry_and_a_digest(reference):
    with pytest.raises(OciError, match="is not host\\[:port\\]/repository@sha256"):
        _release_oci.parse_reference(reference)


def test_layers_split_runtime_from_program_and_are_reproducible(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libswiftCore.so").write_bytes(b"runtime")
    (tmp_path / "app").write_bytes(b"program")
    (tmp_path / "swift-backtrace-static").write_bytes(b"backtracer")
    files = {"lib/libswiftCore.so": "", "app": "", "swift-backtrace-static": ""}
    first = _release_oci.release_layers(str(tmp_path), files, {"lib/libswiftCore.so.6": "libswiftCore.so"})
    assert [(one.role, one.paths()) for one in first] == [
        ("runtime", ["lib", "lib/libswiftCore.so", "lib/libswiftCore.so.6", "swift-backtrace-static"]),
        ("program", ["app"])]
    (tmp_path / "app").write_bytes(b"program 2")
    second = _release_oci.release_layers(str(tmp_path), files, {"lib/libswiftCore.so.6": "libswiftCore.so"})
    assert first[0].digest == second[0].digest and first[1].digest != second[1].digest


def test_the_cache_keeps_only_the_blobs_of_releases_that_exist(tmp_path):
    cache, releases = tmp_path / "cache", tmp_path / "releases"
    (cache / "sha256").mkdir(parents=True)
    (releases / "r2").mkdir(parents=True)
    kept, gone = "a" * 64, "b" * 64
    for name in (kept, gone, "not-a-blob"):
        (cache / "sha256" / name).write_text("x")
    _release_oci.record_release(str(cache), "r1", [{"digest": "sha256:" + gone}])
    _release_oci.record_release(str(cache), "r2", [{"digest": "sha256:" + kept}])
    assert _release_oci.prune_cache(str(cache), str(releases)) == ["sha256:" + gone]
    assert sorted(p.name for p in (cache / "sha256").iterdir()) == [kept, "not-a-blob"]
    assert [p.name for p in (cache / "releases").iterdir()] == ["r2"]
