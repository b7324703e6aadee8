"""Hostile inputs to the image stage: crafted archives, destinations that are not ours, unsafe settings,
and registries that try to draw credentials elsewhere.

Each case checks the four promises: the run fails, the message is one sentence naming the problem and the fix,
there is no traceback, and files that were there before are unchanged. Archives are crafted here with tarfile;
the one real executable is the session-cached static hello build.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support import REPO, built_fixture, run_module, tool_env

PREFIX = "swiftlinux-test-images/"


def one_sentence_failure(result: dict, problem: str, fix: str) -> str:
    """The four checks every hostile case makes on a module result (markers are checked by the caller)."""
    assert result.get("failed"), result
    msg = result["msg"]
    assert "Traceback" not in msg and "Module failed" not in msg and "Traceback" not in result.get("exception", "")
    assert "\n" not in msg and not re.search(r"[.!?]\s+[A-Z]", msg), f"more than one sentence: {msg}"
    assert problem in msg, msg
    assert fix in msg, msg
    return msg


# ---- crafted image archives -------------------------------------------------------------------

def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


LAYER = b"layer bytes"
CONFIG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(LAYER)]},
          "config": {"User": "65532:65532", "Entrypoint": ["/app/x"], "ExposedPorts": {"8080/tcp": {}},
                     "Labels": {"a": "b"}}}


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    return name, data, kind, link


def craft(path: Path, manifest=None, config=None, extra: list | None = None, skip: tuple = ()) -> Path:
    """A docker-save style archive: manifest.json, config, one layer, plus `extra` members (name, data, type, link)."""
    config_bytes = config if isinstance(config, bytes) else json.dumps(CONFIG if config is None else config).encode()
    config_name = f"{sha(config_bytes)}.json"
    if manifest is None:
        manifest = [{"Config": config_name, "RepoTags": ["x:1"], "Layers": [f"{sha(LAYER)}/layer.tar"]}]
    members = [member("manifest.json", manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()),
               member(config_name, config_bytes), member(f"{sha(LAYER)}/layer.tar", LAYER)]
    members = [m for m in members if m[0] not in skip] + (extra or [])
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        for name, data, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


def archive_info(path: Path) -> dict:
    return run_module("image_archive_info", {"path": str(path)})


def test_a_crafted_but_sound_archive_is_described(tmp_path):
    """The base of every crafted case below is itself accepted, so each refusal comes from its one change."""
    result = archive_info(craft(tmp_path / "ok.tar"))
    assert not result.get("failed"), result
    assert result["exposed_ports"] == [8080] and result["entrypoint"] == ["/app/x"] and result["layers"] == 1


def _layer_as(kind, link=""):
    name = f"{sha(LAYER)}/layer.tar"
    manifest = [{"Config": f"{sha(json.dumps(CONFIG).encode())}.json", "Layers": [name]}]
    return {"manifest": manifest, "extra": [member(name, b"", kind, link)], "skip": (name,)}


NESTED = b"[" * 100000 + b"]" * 100000
ARCHIVES = {
    "config is a directory": ({"manifest": [{"Config": "cfg", "Layers": []}],
                               "extra": [member("cfg", kind=tarfile.DIRTYPE)]}, "is a directory", "write it again"),
    "layer is a symlink": (_layer_as(tarfile.SYMTYPE, "/etc/passwd"), "is a symlink", "write it again"),
    "layer is a hard link": (_layer_as(tarfile.LNKTYPE, "manifest.json"), "is a hard link", "write it again"),
    "layer is a FIFO": (_layer_as(tarfile.FIFOTYPE), "is a FIFO", "write it again"),
    "layer is a device": (_layer_as(tarfile.CHRTYPE), "is a device", "write it again"),
    "config missing": ({"manifest": [{"Config": "gone.json", "Layers": []}]}, "gone.json is missing",
                       "write it again"),
    "manifest missing": ({"skip": ("manifest.json",)}, "manifest.json is missing", "write it again"),
    "config name climbs out": ({"manifest": [{"Config": "../../etc/passwd", "Layers": []}]},
                               "not a relative path inside the archive", "write it again"),
    "layer name is absolute": ({"manifest": [{"Config": f"{sha(json.dumps(CONFIG).encode())}.json",
                                              "Layers": ["/etc/shadow"]}]},
                               "not a relative path inside the archive", "write it again"),
    "manifest is an object": ({"manifest": {"Config": "x"}}, "manifest.json is not a list", "write it again"),
    "manifest names no layers list": ({"manifest": [{"Config": f"{sha(json.dumps(CONFIG).encode())}.json",
                                                     "Layers": "x"}]}, "Layers entry", "write it again"),
    "config is a list": ({"config": []}, "the config is list, not dict", "write it again"),
    "entrypoint is a string": ({"config": {**CONFIG, "config": {"Entrypoint": "/bin/sh -c id"}}},
                               "Entrypoint is str, not a list of strings", "write it again"),
    "exposed port is not a number": ({"config": {**CONFIG, "config": {"ExposedPorts": {"http/tcp": {}}}}},
                                     "exposed port 'http/tcp'", "write it again"),
    "exposed port out of range": ({"config": {**CONFIG, "config": {"ExposedPorts": {"70000/tcp": {}}}}},
                                  "exposed port '70000/tcp'", "write it again"),
    "label value is a number": ({"config": {**CONFIG, "config": {"Labels": {"a": 1}}}},
                                "Labels hold values that are not strings", "write it again"),
    "diff_ids of the wrong type": ({"config": {**CONFIG, "rootfs": {"diff_ids": "sha256:x"}}},
                                   "diff_ids of the config is str", "write it again"),
    "layer count differs from diff_ids": ({"config": {**CONFIG, "rootfs": {"diff_ids": []}}},
                                          "names 1 layers but the config records 0", "write it again"),
    "config nested past any parser": ({"config": NESTED}, "is not valid JSON", "write it again"),
    "config larger than any config": ({"config": b" " * (5 << 20) + b"{}"}, "more than the", "write it again"),
    "layer altered": ({"manifest": [{"Config": f"{sha(json.dumps(CONFIG).encode())}.json",
                                     "Layers": [f"{sha(b'other')}/layer.tar"]}],
                       "extra": [member(f"{sha(b'other')}/layer.tar", b"tampered")]}, "damaged or was altered",
                      "write it again"),
}


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_hostile_archive_is_one_sentence(tmp_path, case):
    spec, problem, fix = ARCHIVES[case]
    path = craft(tmp_path / "image.tar", **spec)
    before = path.read_bytes()
    one_sentence_failure(archive_info(path), problem, fix)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["image.tar"]


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """A gzip stream of 256 MiB of zeros (about 256 KiB on disk): refused as compressed, never inflated."""
    bomb = tmp_path / "bomb.tar"
    with gzip.open(bomb, "wb", compresslevel=9) as stream:
        chunk = b"\0" * (1 << 20)
        for _megabyte in range(256):
            stream.write(chunk)
    assert bomb.stat().st_size < 4 << 20
    one_sentence_failure(archive_info(bomb), "is not a readable uncompressed tar", "decompress it first")


def test_member_larger_than_the_archive_is_refused(tmp_path):
    path = craft(tmp_path / "image.tar")
    data = bytearray(path.read_bytes())
    header = data.index(b"manifest.json")  # the first header: give it a size of 1 GiB
    data[header + 124:header + 136] = b"%011o\0" % (1 << 30)
    data[header + 148:header + 156] = b" " * 8
    data[header + 148:header + 155] = b"%06o\0" % sum(data[header:header + 512])
    path.write_bytes(bytes(data))
    one_sentence_failure(archive_info(path), "image.tar", "write it")


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_archive_path_that_is_not_an_archive(tmp_path, what):
    path = tmp_path / "image.tar"
    if what == "directory":
        path.mkdir()
        (path / "marker").write_text("keep")
    one_sentence_failure(archive_info(path), "does not exist or is not a regular file", "fix the path")
    assert what == "missing" or (path / "marker").read_text() == "keep"


# ---- oci_image: destinations that are not ours, unsafe settings ----------------------------------

def hello() -> str:
    return built_fixture("hello", "static_executable")["products"]["hello"]["path"]


def image(tmp_path: Path, **extra) -> dict:
    return {"executable": hello(), "name": PREFIX + "hello", "source_date_epoch": 1700000000, **extra}


def marked_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "precious.txt").write_text("user data")
    return path


@pytest.mark.parametrize("fmt", ["oci-layout", "context"])
def test_directory_with_user_files_is_not_replaced(tmp_path, fmt):
    dest = marked_dir(tmp_path / "out")
    for check_mode in (True, False):
        result = run_module("oci_image", image(tmp_path, format=fmt, dest=str(dest)), check_mode=check_mode)
        one_sentence_failure(result, "did not write (precious.txt)", "choose a new or empty dest")
    assert sorted(p.name for p in dest.iterdir()) == ["precious.txt"]
    assert (dest / "precious.txt").read_text() == "user data"


def test_root_is_never_a_dest(tmp_path):
    top = sorted(p.name for p in Path("/").iterdir())
    result = run_module("oci_image", image(tmp_path, dest="/"))
    one_sentence_failure(result, "/ already holds files that swiftlinux.deploy.oci_image did not write",
                         "choose a new or empty dest")
    assert sorted(p.name for p in Path("/").iterdir()) == top


def test_regular_file_in_place_of_a_layout_dest(tmp_path):
    dest = tmp_path / "out"
    dest.write_text("not a directory")
    one_sentence_failure(run_module("oci_image", image(tmp_path, dest=str(dest))), "exists and is not a directory",
                         "choose a new or empty dest")
    assert dest.read_text() == "not a directory"


def test_files_added_to_our_own_layout_are_kept(tmp_path):
    dest = tmp_path / "out"
    assert not run_module("oci_image", image(tmp_path, dest=str(dest))).get("failed")
    (dest / "notes.txt").write_text("mine")
    one_sentence_failure(run_module("oci_image", image(tmp_path, dest=str(dest), env={"RELEASE": "2"})),
                         "holds files added after", "move them out")
    assert (dest / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("what", ["text file", "foreign tar", "directory", "symlink"])
def test_archive_dest_that_is_not_our_archive(tmp_path, what):
    dest = tmp_path / "image.tar"
    if what == "text file":
        dest.write_text("precious")
    elif what == "foreign tar":
        craft(dest)
    elif what == "directory":
        marked_dir(dest)
    else:
        (tmp_path / "target").write_text("precious")
        dest.symlink_to(tmp_path / "target")
    before = {p.name: (p.is_symlink(), p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")}
    result = run_module("oci_image", image(tmp_path, format="archive", dest=str(dest)))
    problem = ("is not an image archive that swiftlinux.deploy.oci_image wrote"
               if what in ("text file", "foreign tar") else "exists and is not a regular file")
    one_sentence_failure(result, problem, "choose another dest")
    assert before == {p.name: (p.is_symlink(), p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")}


def test_our_own_archive_is_overwritten(tmp_path):
    dest = tmp_path / "image.tar"
    first = run_module("oci_image", image(tmp_path, format="archive", dest=str(dest)))
    written = dest.read_bytes()
    second = run_module("oci_image", image(tmp_path, format="archive", dest=str(dest), env={"RELEASE": "2"}))
    assert second["changed"] and second["digest"] != first["digest"], second.get("msg")
    assert dest.read_bytes() != written and sorted(p.name for p in tmp_path.iterdir()) == ["image.tar"]


@pytest.mark.parametrize(("setting", "problem", "fix"), [
    ({"source_date_epoch": -1}, "source_date_epoch -1 is out of range", "from 0 to 4294967295"),
    ({"source_date_epoch": 2 ** 32}, "source_date_epoch 4294967296 is out of range", "last commit's time"),
    ({"source_date_epoch": 10 ** 30}, "is out of range", "from 0 to 4294967295"),
    ({"env": {"A\nUSER 0:0": "x"}}, "is not a POSIX variable name", "use letters, digits and '_'"),
    ({"labels": {"a\nLABEL b": "x"}}, "label key", "use letters, digits"),
    ({"user": 2 ** 31}, "user 2147483648 is not a numeric id", "set user"),
    ({"ports": [0, 8080]}, "port 0 is not a TCP port", "fix ports"),
    ({"tag": "1.0\nFROM evil"}, "image tag", "e.g. 1.0.0"),
    ({"healthcheck": {"kind": "http", "command": ["/app/hello"]}}, "no shell, curl or other tool to probe http",
     "container role probe from the host"),
    ({"recipe": "runtime-base", "format": "context", "base_image": "x\nRUN id"},
     "base_image 'x\\nRUN id' is not a valid image reference", "[registry/]name[:tag]"),
])
def test_unsafe_settings_are_refused_before_anything_is_written(tmp_path, setting, problem, fix):
    marked_dir(tmp_path / "keep")
    args = {**image(tmp_path, dest=str(tmp_path / "out")), **setting}
    if setting.get("recipe") == "runtime-base":  # a dynamic build, whose Containerfile starts FROM base_image
        args["executable"] = built_fixture("hello", "dynamic")["products"]["hello"]["path"]
    one_sentence_failure(run_module("oci_image", args), problem, fix)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


def test_a_crafted_base_image_is_refused(tmp_path):
    base = craft(tmp_path / "base.tar")  # a docker-save archive, not an OCI layout: no index.json
    args = {"executable": built_fixture("hello", "dynamic")["products"]["hello"]["path"], "base": str(base),
            "name": PREFIX + "app", "dest": str(tmp_path / "out")}
    one_sentence_failure(run_module("oci_image", args), "index.json is missing from the archive", "write it again")
    assert not (tmp_path / "out").exists()


# ---- credentials stay with their registry ------------------------------------------------------

class Recorder(ThreadingHTTPServer):
    """Records every request (method, path, headers); answers uploads with 201 and anything else with 404."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        super().__init__(("127.0.0.1", 0), RecordingHandler)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RecordingHandler(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.requests.append((self.command, self.path, dict(self.headers)))
        self.send_response(201 if self.command == "PUT" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = _answer

    def log_message(self, *args):
        pass


class FakeRegistry(ThreadingHTTPServer):
    """A registry that wants Basic credentials, redirects manifest reads and hands out uploads to `elsewhere`."""

    def __init__(self, elsewhere: Recorder, authorization: str):
        self.elsewhere, self.authorization, self.seen = elsewhere, authorization, []
        super().__init__(("127.0.0.1", 0), FakeRegistryHandler)


class FakeRegistryHandler(BaseHTTPRequestHandler):
    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != self.server.authorization:
            self._send(401, {"WWW-Authenticate": 'Basic realm="fake"'})
        elif self.command == "GET" and "/manifests/" in self.path:
            self._send(307, {"Location": self.server.elsewhere.base + self.path})
        elif self.command == "POST" and self.path.endswith("/blobs/uploads/"):
            self._send(202, {"Location": f"{self.server.elsewhere.base}/upload/{len(self.server.seen)}"})
        elif self.command == "PUT" and "/manifests/" in self.path:
            self._send(201, {})
        else:
            self._send(404, {})

    def _send(self, code: int, headers: dict):
        self.send_response(code)
        for key, value in {**headers, "Content-Length": "0"}.items():
            self.send_header(key, value)
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = _answer

    def log_message(self, *args):
        pass


def serving(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def test_credentials_are_not_sent_to_a_redirect_or_upload_on_another_port(tmp_path):
    import base64
    password = "hunter2-only-for-fake"
    authorization = "Basic " + base64.b64encode(f"ci:{password}".encode()).decode()
    recorder = Recorder()
    fake = FakeRegistry(recorder, authorization)
    serving(recorder), serving(fake)
    try:
        result = run_module("oci_image", image(tmp_path, name=f"127.0.0.1:{fake.server_address[1]}/{PREFIX}hello",
                                               push=True, registry_username="ci", registry_password=password))
    finally:
        fake.shutdown(), recorder.shutdown()
        fake.server_close(), recorder.server_close()
    assert not result.get("failed"), result.get("msg")
    assert result["pushed"] and password not in json.dumps(result)
    assert any(seen[2] == authorization for seen in fake.seen), "the registry itself did get the credentials"
    methods = sorted({request[0] for request in recorder.requests})
    assert methods == ["GET", "PUT"], recorder.requests  # the redirected manifest read and the blob uploads
    for method, path, headers in recorder.requests:
        assert "Authorization" not in headers and "authorization" not in {k.lower() for k in headers}, (method, path)


def test_credentials_never_appear_in_output_at_any_verbosity(registry, auth_registry, tmp_path):
    """Two real registries: pushes to both with the same credentials; wrong ones are refused without echo."""
    outputs = []
    for host, password in ((auth_registry.host, auth_registry.password), (registry.host, auth_registry.password),
                           (auth_registry.host, "wrong-" + auth_registry.password)):
        args = image(tmp_path, name=f"{host}/{PREFIX}hello", push=True, registry_username=auth_registry.username,
                     registry_password=password)
        proc = subprocess.run(
            [str(REPO / ".venv" / "bin" / "ansible"), "localhost", "-c", "local", "-i", "localhost,", "-vvvv",
             "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", "-m", "swiftlinux.deploy.oci_image",
             "-a", json.dumps(args)], capture_output=True, text=True, cwd=REPO, env=tool_env(), check=False)
        outputs.append((proc.returncode, proc.stdout + proc.stderr))
        assert password not in proc.stdout + proc.stderr
    assert [output[0] for output in outputs] == [0, 0, 2], [output[1][-2000:] for output in outputs]
    assert "refused the credentials of user swiftlinux" in outputs[2][1]
