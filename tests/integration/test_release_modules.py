"""artifact_info and release on real files through ansible: the deploy bookkeeping, without a host."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from support import built_fixture, run_module, swift_build_fixture


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- artifact_info --------------------------------------------------------------------------

def test_a_static_build_is_described_with_its_checksums_and_entry_point():
    build = built_fixture("resources", "static_stdlib")
    info = run_module("artifact_info", {"path": str(swift_build_fixture("resources", "static_stdlib"))})
    product = build["products"]["resource-reader"]
    assert (info["kind"], info["link_mode"], info["entrypoint"]) == ("executable", "static_stdlib", "resource-reader")
    assert info["files"]["resource-reader"] == product["sha256"]
    assert "resources_resource-reader.resources/greeting.txt" in info["files"]
    assert "resource-reader.debug" not in info["files"]
    assert info["glibc_required"] == product["elf"]["glibc_required"] and info["system_libraries"]
    assert not info["changed"] and len(info["release_id"]) == 16


def test_the_release_id_follows_the_content(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(swift_build_fixture("hello", "static_executable"), copy, symlinks=True)
    first = run_module("artifact_info", {"path": str(copy)})
    again = run_module("artifact_info", {"path": str(copy)})
    assert first["release_id"] == again["release_id"]
    (copy / "swift-backtrace-static").write_bytes(b"another backtracer")
    assert run_module("artifact_info", {"path": str(copy)})["release_id"] != first["release_id"]


@pytest.mark.parametrize(("setup", "needle"), [
    ("missing", "does not exist"),
    ("empty", "neither swift_build.json nor bag.json"),
    ("bad-json", "is not valid JSON"),
    ("unknown-mode", "unknown link mode 'semi'"),
    ("tampered", "checksum mismatch"),
])
def test_bad_artifacts(tmp_path, setup, needle):
    path = tmp_path / "artifact"
    if setup != "missing":
        path.mkdir()
    if setup == "bad-json":
        (path / "swift_build.json").write_text("{not json")
    if setup in ("unknown-mode", "tampered"):
        shutil.copytree(swift_build_fixture("hello", "static_executable"), path, dirs_exist_ok=True)
    if setup == "unknown-mode":
        manifest = json.loads((path / "swift_build.json").read_text())
        (path / "swift_build.json").write_text(json.dumps({**manifest, "link_mode": "semi"}))
    if setup == "tampered":
        (path / "hello").write_bytes(b"not the build")
    result = run_module("artifact_info", {"path": str(path)})
    assert result.get("failed") and needle in result["msg"], result


@pytest.mark.parametrize("setup", ["good", "tampered", "bad-option"])
def test_the_action_plugin_answers_as_the_module_does(tmp_path, setup):
    """On the local connection the action plugin describes in Ansible's process (the role describes the artifact for
    every host so); the module file, which the other tests run, must give the same answer and the same error."""
    path = tmp_path / "artifact"
    shutil.copytree(swift_build_fixture("hello", "static_executable"), path, symlinks=True)
    args = {"path": str(path)}
    if setup == "tampered":
        (path / "hello").write_bytes(b"not the build")
    if setup == "bad-option":
        args["include_debug_info"] = "maybe"
    module = run_module("artifact_info", args)
    action = run_module("artifact_info", args, through_ansible=True)
    if setup == "good":
        assert not action.get("failed"), action
        ansible_own = ("invocation", "action", "_ansible_no_log")  # what Ansible adds to every task's result
        assert {k: v for k, v in action.items() if k not in ansible_own} == \
            {k: v for k, v in module.items() if k not in ansible_own}
    else:
        assert module.get("failed") and action.get("failed"), (module, action)
        needle = "checksum mismatch in" if setup == "tampered" else "include_debug_info"
        assert needle in module["msg"] and needle in action["msg"], (module["msg"], action["msg"])
        assert "Traceback" not in json.dumps(action)


def test_unknown_executable_lists_the_ones_there():
    result = run_module("artifact_info", {"path": str(swift_build_fixture("multi-exec", "static_executable")),
                                          "executable": "nope"})
    assert result.get("failed") and "counter, greeter" in result["msg"]


# ---- release --------------------------------------------------------------------------------

def stage(root: Path, content: bytes) -> dict:
    staging = root / "releases" / ".staging"
    staging.mkdir(parents=True)
    (staging / "app").write_bytes(content)
    return {"app": sha(content)}


def test_install_switch_idempotence_rollback_and_prune(tmp_path):
    ids = []
    for number in range(4):
        files = stage(tmp_path, b"release %d" % number)
        args = {"root": str(tmp_path), "release_id": f"r{number}", "staging": str(tmp_path / "releases" / ".staging"),
                "files": files, "keep": 2}
        result = run_module("release", args, diff=True)
        assert result["changed"] and result["previous_id"] == (ids[-1] if ids else None)
        assert os.readlink(tmp_path / "current") == f"releases/r{number}"
        assert result["diff"]["after"] == f"current -> r{number}\n"
        ids.append(f"r{number}")
        assert not run_module("release", {**args, "staging": None})["changed"]
    # keep=2 keeps the newest two; the previous one is protected too.
    assert sorted(os.listdir(tmp_path / "releases")) == ["r2", "r3"]
    back = run_module("release", {"root": str(tmp_path), "release_id": "r3", "state": "rollback", "previous_id": "r2"})
    assert back["changed"] and os.readlink(tmp_path / "current") == "releases/r2"


def test_check_mode_switches_nothing(tmp_path):
    files = stage(tmp_path, b"v1")
    result = run_module("release", {"root": str(tmp_path), "release_id": "v1", "files": files,
                                    "staging": str(tmp_path / "releases" / ".staging")}, check_mode=True)
    assert result["changed"] and not (tmp_path / "current").exists()
    assert (tmp_path / "releases" / ".staging" / "app").exists()


def test_a_release_that_fails_verification_never_becomes_current(tmp_path):
    good = stage(tmp_path, b"good")
    run_module("release", {"root": str(tmp_path), "release_id": "good", "files": good,
                           "staging": str(tmp_path / "releases" / ".staging")})
    stage(tmp_path, b"corrupted in transit")
    result = run_module("release", {"root": str(tmp_path), "release_id": "bad", "files": {"app": sha(b"intended")},
                                    "staging": str(tmp_path / "releases" / ".staging")})
    assert result.get("failed") and "app (checksum mismatch)" in result["msg"] and "release good is current" in result["msg"]
    assert os.readlink(tmp_path / "current") == "releases/good"
    assert sorted(os.listdir(tmp_path / "releases")) == ["good"]


@pytest.mark.parametrize(("args", "needle"), [
    ({"release_id": "../etc"}, "may hold only letters"),
    ({"release_id": "new"}, "no uploaded staging directory"),
    ({"release_id": "x", "state": "rollback", "previous_id": "gone"}, "cannot roll back to release gone"),
    ({"release_id": "x", "state": "rollback"}, "previous_id"),
])
def test_release_bad_inputs(tmp_path, args, needle):
    (tmp_path / "releases").mkdir()
    result = run_module("release", {"root": str(tmp_path), **args})
    assert result.get("failed") and needle in result["msg"], result
    assert os.listdir(tmp_path / "releases") == []


# ---- release with src: the artifact in one transfer (the action plugin) ------------------------

def artifact_dir(tmp_path: Path) -> tuple[Path, dict]:
    src = tmp_path / "artifact"
    (src / "lib").mkdir(parents=True)
    (src / "app").write_bytes(b"#!/bin/sh\necho app\n")
    (src / "app").chmod(0o755)
    (src / "lib" / "libx.so.1.2").write_bytes(b"library")
    (src / "lib" / "libx.so.1").symlink_to("libx.so.1.2")
    return src, {"app": sha(b"#!/bin/sh\necho app\n"), "lib/libx.so.1.2": sha(b"library")}


def test_src_uploads_verifies_and_switches_in_one_task_and_again_changes_nothing(tmp_path):
    src, files = artifact_dir(tmp_path)
    root = tmp_path / "opt" / "svc"  # missing: the module makes it, and releases, owned by root with mode 0755
    args = {"root": str(root), "release_id": "r1", "src": str(src), "files": {**files, ".swiftlinux/env": sha(b"A=1\n")},
            "content": {".swiftlinux/env": "A=1\n"},
            "links": {"lib/libx.so.1": "libx.so.1.2", ".swiftlinux/svc": "../app"}}
    assert run_module("release", args, check_mode=True)["changed"]
    assert not root.exists(), "check mode sends and writes nothing"
    result = run_module("release", args)
    assert result["changed"] and os.readlink(root / "current") == "releases/r1", result
    assert result["uploaded_bytes"] >= sum(len(p.read_bytes()) for p in (src / "app", src / "lib" / "libx.so.1.2"))
    release = root / "releases" / "r1"
    assert (release / "app").read_bytes() == b"#!/bin/sh\necho app\n" and os.access(release / "app", os.X_OK)
    assert os.readlink(release / "lib" / "libx.so.1") == "libx.so.1.2"
    assert os.readlink(release / ".swiftlinux" / "svc") == "../app"
    assert oct((release / ".swiftlinux" / "env").stat().st_mode & 0o777) == "0o600"
    assert oct(root.stat().st_mode & 0o777) == "0o755" and oct((root / "releases").stat().st_mode & 0o777) == "0o755"
    assert sorted(os.listdir(root / "releases")) == ["r1"], "no staging directory is left"
    again = {k: v for k, v in args.items() if k != "src"}
    unchanged = run_module("release", again)
    assert not unchanged["changed"] and unchanged["uploaded_bytes"] == 0


@pytest.mark.parametrize(("damage", "needle"), [
    ("outside", "outside"),         # a file of the release that is a link out of the artifact
    ("missing", "cannot be read"),  # a file the release names that the artifact lacks
    ("fifo", "not a regular file"),
])
def test_src_refuses_what_it_must_not_send_and_the_host_keeps_its_release(tmp_path, damage, needle):
    src, files = artifact_dir(tmp_path)
    root = tmp_path / "svc"
    assert run_module("release", {"root": str(root), "release_id": "r1", "src": str(src), "files": files,
                                  "links": {"lib/libx.so.1": "libx.so.1.2"}})["changed"]
    (src / "app").unlink()
    if damage == "outside":
        secret = tmp_path / "secret"
        secret.write_text("controller secret")
        (src / "app").symlink_to(secret)
    elif damage == "fifo":
        os.mkfifo(src / "app")
    result = run_module("release", {"root": str(root), "release_id": "r2", "src": str(src), "files": files})
    assert result.get("failed") and needle in result["msg"] and "Nothing was sent" in result["msg"], result
    assert "Traceback" not in json.dumps(result)
    assert os.readlink(root / "current") == "releases/r1" and sorted(os.listdir(root / "releases")) == ["r1"]


def test_an_archive_with_a_path_outside_the_release_is_refused(tmp_path):
    archive = tmp_path / "release.tar"
    with tarfile.open(archive, "w") as tar:
        member = tarfile.TarInfo("../../escaped")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"bad"))
    root = tmp_path / "svc"
    root.mkdir()
    result = run_module("release", {"root": str(root), "release_id": "r1", "archive": str(archive),
                                    "files": {"escaped": sha(b"bad")}})
    assert result.get("failed") and "outside the release" in result["msg"] and "no release is current" in result["msg"]
    assert not (tmp_path / "escaped").exists() and os.listdir(root / "releases") == []
    assert archive.exists(), "the module never removes the archive it was given"


def test_src_that_is_not_a_directory_is_one_error(tmp_path):
    files = artifact_dir(tmp_path)[1]
    root = tmp_path / "svc"
    root.mkdir()
    result = run_module("release", {"root": str(root), "release_id": "r1", "src": str(tmp_path / "nope"),
                                    "files": files})
    assert result.get("failed") and "is not a directory on the controller" in result["msg"], result
    assert os.listdir(root) == []
