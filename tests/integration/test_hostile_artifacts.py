"""Crafted artifacts, manifests and release inputs, as a hostile user would hand them over (issue 10).

Every case checks four things: the run fails; its message is one sentence naming the problem and the fix; no
traceback; marker files outside the intended place are unchanged. Artifacts are copies of the session-cached
builds with an edited manifest, so checksums match and only the crafted part is wrong.
"""
from __future__ import annotations

import concurrent.futures
import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from support import built_fixture, run_module, run_playbook, start_systemd_host, swift_build_fixture

FIX_WORDS = ("rebuild", "use ", "set ", "choose", "move", "remove", "upload", "pass ", "make ", "replace", "deploy")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def one_sentence(result: dict, *needles: str) -> str:
    """The run failed with one sentence that names the problem (needles) and a fix, and no traceback."""
    assert result.get("failed"), result
    msg = result["msg"]
    dump = json.dumps(result)
    assert "Traceback" not in dump and "Module failed" not in msg and "\n" not in msg, msg
    assert any(word in msg for word in FIX_WORDS), f"no fix named in: {msg}"
    for needle in needles:
        assert needle in msg, msg
    return msg


def snapshot(path: Path) -> dict:
    """Every entry below path with its type and content, to show that nothing there changed."""
    found = {}
    for entry in sorted(path.rglob("*")):
        key = str(entry.relative_to(path))
        if entry.is_symlink():
            found[key] = "-> " + os.readlink(entry)
        elif entry.is_file():
            found[key] = entry.read_bytes()
        else:
            found[key] = "dir"
    return found


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory outside every artifact and root, holding a marker a crafted path aims at."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "marker").write_bytes(b"must survive")
    return directory


# ---- artifact_info: single-executable builds --------------------------------------------------------------------

def copy_build(tmp_path: Path, fixture: str = "hello", mode: str = "static_executable") -> Path:
    """A copy of a cached build three levels below tmp_path, so '../../../outside' reaches the marker."""
    built_fixture(fixture, mode)
    art = tmp_path / "a" / "b" / "artifact"
    shutil.copytree(swift_build_fixture(fixture, mode), art, symlinks=True)
    return art


def edit(manifest: Path, change) -> None:
    doc = json.loads(manifest.read_text())
    doc = change(doc)
    manifest.write_text(json.dumps(doc))


def rename_product(new_name: str):
    def change(doc):
        doc["products"] = {new_name: doc["products"]["hello"]}
        return doc
    return change


def set_in_product(key, value):
    def change(doc):
        product = doc["products"]["hello"]
        if value is KeyError:
            del product[key]
        else:
            product[key] = value
        return doc
    return change


def top(key, value):
    def change(doc):
        if value is KeyError:
            del doc[key]
        else:
            doc[key] = value
        return doc
    return change


MARKER_SHA = sha(b"must survive")


def product_sha_is_marker(doc):
    for product in doc["products"].values():
        product["sha256"] = MARKER_SHA
    return doc


BUILD_CASES = {
    # name: (change to swift_build.json, words the message must hold)
    "product-dotdot": (lambda d: product_sha_is_marker(rename_product("../../../outside/marker")(d)),
                       ["product name", "not a plain file name"]),
    "product-absolute": (lambda d: product_sha_is_marker(rename_product("/etc/hostname")(d)),
                         ["product name", "not a plain file name"]),
    "resource-dotdot": (set_in_product("resources", ["/build/x/.."]), ["resources[0]", "not a plain file name"]),
    "top-list": (lambda d: [d], ["(top level) must be an object"]),
    "products-list": (top("products", [{"name": "hello"}]), ["field products must be an object"]),
    "products-missing": (top("products", KeyError), ["field products is missing"]),
    "link-mode-int": (top("link_mode", 3), ["field link_mode must be a string"]),
    "sha-int": (set_in_product("sha256", 5), ["products.hello.sha256 must be a string"]),
    "sha-not-hex": (set_in_product("sha256", "x" * 64), ["products.hello.sha256 must be 64 lowercase hex"]),
    "elf-missing": (set_in_product("elf", KeyError), ["products.hello.elf is missing"]),
    "needed-string": (lambda d: set_in_product("elf", {**d["products"]["hello"]["elf"], "needed": "libc.so.6"})(d),
                      ["products.hello.elf.needed must be a list of strings"]),
    "resources-dict": (set_in_product("resources", {"a": 1}), ["products.hello.resources must be a list"]),
}


@pytest.mark.parametrize("case", sorted(BUILD_CASES))
def test_crafted_build_manifest_is_refused(tmp_path, outside, case):
    change, needles = BUILD_CASES[case]
    art = copy_build(tmp_path)
    edit(art / "swift_build.json", change)
    before = snapshot(outside)
    msg = one_sentence(run_module("artifact_info", {"path": str(art)}), "swift_build.json", *needles)
    assert "rebuild the artifact" in msg
    assert snapshot(outside) == before


def test_product_that_is_a_link_out_of_the_artifact_is_refused(tmp_path, outside):
    art = copy_build(tmp_path)
    (art / "hello").unlink()
    (art / "hello").symlink_to(outside / "marker")
    edit(art / "swift_build.json", product_sha_is_marker)
    before = snapshot(outside)
    one_sentence(run_module("artifact_info", {"path": str(art)}), "hello", str(outside / "marker"))
    assert snapshot(outside) == before


@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_link_in_a_resource_bundle_leading_out_is_refused(tmp_path, outside, target):
    art = copy_build(tmp_path, "resources", "static_stdlib")
    bundle = next(p for p in art.iterdir() if p.name.endswith(".resources"))
    aim = outside / "marker" if target == "absolute" else os.path.relpath(outside / "marker", bundle)
    (bundle / "leak").symlink_to(aim)
    before = snapshot(outside)
    msg = one_sentence(run_module("artifact_info", {"path": str(art)}), "leak")
    assert ("absolute path" if target == "absolute" else "outside") in msg
    assert snapshot(outside) == before


def run_with_fifo_guard(fifo: Path, name: str, args: dict) -> dict:
    """run_module, failing (not hanging) if the module blocks on the FIFO: after 60 s a writer unblocks it."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(run_module, name, args)
        try:
            return future.result(timeout=60)
        except concurrent.futures.TimeoutError:
            with open(fifo, "wb"):
                pass  # lets the blocked reader go on, so the run ends
            future.result()
            pytest.fail(f"{name} hung on the FIFO {fifo} instead of refusing it", pytrace=False)


def test_fifo_in_a_resource_bundle_is_refused_without_hanging(tmp_path):
    art = copy_build(tmp_path, "resources", "static_stdlib")
    bundle = next(p for p in art.iterdir() if p.name.endswith(".resources"))
    os.mkfifo(bundle / "pipe")
    result = run_with_fifo_guard(bundle / "pipe", "artifact_info", {"path": str(art)})
    one_sentence(result, "pipe", "special file")


def test_fifo_as_the_manifest_is_refused_without_hanging(tmp_path):
    art = copy_build(tmp_path)
    (art / "swift_build.json").unlink()
    os.mkfifo(art / "swift_build.json")
    result = run_with_fifo_guard(art / "swift_build.json", "artifact_info", {"path": str(art)})
    one_sentence(result, "swift_build.json", "special file")


# ---- artifact_info: bags ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    """One real bag of the dynamic hello, made once for this file."""
    dest = tmp_path_factory.mktemp("contain-bag") / "bag"
    result = run_module("shared_objects", {"executables": [built_fixture("hello", "dynamic")["products"]["hello"]["path"]],
                                           "dest": str(dest)})
    assert not result.get("failed"), result.get("msg")
    return dest


def copy_bag(bag: Path, tmp_path: Path) -> Path:
    art = tmp_path / "a" / "b" / "bag"
    shutil.copytree(bag, art, symlinks=True)
    return art


def first_file(key, value):
    def change(doc):
        if value is KeyError:
            del doc["files"][0][key]
        else:
            doc["files"][0][key] = value
        return doc
    return change


def escaping_file(path):
    def change(doc):
        doc["files"].append({"path": path, "sha256": MARKER_SHA, "size": 12, "kind": "library", "source": None,
                             "package": None, "package_version": None})
        return doc
    return change


BAG_CASES = {
    "file-dotdot": (escaping_file("../../../outside/marker"), ["files[", "leaves its directory"]),
    "file-absolute": (escaping_file("/etc/hostname"), ["files[", "absolute path"]),
    "launch-absolute": (lambda d: {**d, "launch": {"hello": ["/bin/sh", "-c", "id"]}}, ["launch.hello[0]"]),
    "launch-dotdot": (lambda d: {**d, "launch": {"hello": ["../../bin/hello"]}}, ["launch.hello[0]"]),
    "executable-dotdot": (lambda d: {**d, "executables": ["../hello"]}, ["executables[0]", "not a plain file"]),
    "top-list": (lambda d: [d], ["(top level) must be an object"]),
    "files-dict": (lambda d: {**d, "files": {"bin/hello": "x"}}, ["field files must be a list"]),
    "file-missing-path": (first_file("path", KeyError), ["files[0].path is missing"]),
    "file-size-string": (first_file("size", "12"), ["files[0].size must be an integer"]),
    "file-kind-unknown": (first_file("kind", "device"), ["files[0].kind must be one of"]),
    "scope-unknown": (lambda d: {**d, "scope": "everything"}, ["field scope must be one of"]),
    "launch-list": (lambda d: {**d, "launch": [["bin/hello"]]}, ["field launch must be an object"]),
    # The backtracer's path goes into the systemd unit: no line breaks, no way out, only a file of the bag.
    "backtracer-newline": (lambda d: {**d, "backtracer": "libexec/x\nExecStartPre=/bin/id"},
                           ["field backtracer must be a path of letters"]),
    "backtracer-dotdot": (lambda d: {**d, "backtracer": "../../../outside/marker"}, ["backtracer", "leaves its"]),
    "backtracer-not-a-file": (lambda d: {**d, "backtracer": "lib/libswiftCore.so"},
                              ["names the backtracer lib/libswiftCore.so", "not a backtracer or launcher"]),
}


@pytest.mark.parametrize("case", sorted(BAG_CASES))
def test_crafted_bag_manifest_is_refused(bag, tmp_path, outside, case):
    change, needles = BAG_CASES[case]
    art = copy_bag(bag, tmp_path)
    edit(art / "bag.json", change)
    before = snapshot(outside)
    msg = one_sentence(run_module("artifact_info", {"path": str(art)}), "bag.json", *needles)
    assert "rebuild the artifact" in msg
    assert snapshot(outside) == before


def test_soname_link_in_a_bag_leading_out_is_refused(bag, tmp_path, outside):
    art = copy_bag(bag, tmp_path)
    (art / "lib" / "libevil.so").symlink_to(os.path.relpath(outside / "marker", art / "lib"))
    one_sentence(run_module("artifact_info", {"path": str(art)}), "libevil.so", "outside")
    assert run_module("artifact_info", {"path": str(bag)}).get("failed") is not True, "the real bag is fine"


# ---- release on the host ----------------------------------------------------------------------------------------

@pytest.fixture
def root(tmp_path) -> Path:
    """A service root with release r1 current and a fresh upload in releases/.staging-r2."""
    service = tmp_path / "srv"
    staging = service / "releases" / ".staging-r1"
    staging.mkdir(parents=True)
    (staging / "app").write_bytes(b"one")
    result = run_module("release", {"root": str(service), "release_id": "r1", "staging": str(staging),
                                    "files": {"app": sha(b"one")}})
    assert result["changed"], result
    upload = service / "releases" / ".staging-r2"
    upload.mkdir()
    (upload / "app").write_bytes(b"two")
    return service


def release(root: Path, **args) -> dict:
    args.setdefault("staging", str(root / "releases" / ".staging-r2"))
    args.setdefault("files", {"app": sha(b"two")})
    return run_module("release", {"root": str(root), "release_id": "r2", **args})


def assert_r1_current(root: Path, msg: str) -> None:
    assert os.readlink(root / "current") == "releases/r1"
    assert "release r1 is current" in msg, msg
    assert "r2" not in os.listdir(root / "releases")


@pytest.mark.parametrize("key", ["../../../outside/marker", "ABSOLUTE", "app/../../../../outside/marker"])
def test_release_refuses_a_files_key_outside_the_release_before_hashing(root, outside, key):
    key = str(outside / "marker") if key == "ABSOLUTE" else key
    before = snapshot(outside)
    msg = one_sentence(release(root, files={key: MARKER_SHA}), "files key")
    assert "checksum" not in msg and "missing" not in msg, "no hint whether the file exists: no hash oracle"
    assert_r1_current(root, msg)
    assert (root / "releases" / ".staging-r2" / "app").exists(), "refused before touching the upload"
    assert snapshot(outside) == before


@pytest.mark.parametrize("kind", ["absolute-link", "relative-link", "fifo"])
def test_release_refuses_a_staged_file_that_is_not_regular(root, outside, kind):
    app = root / "releases" / ".staging-r2" / "app"
    app.unlink()
    if kind == "fifo":
        os.mkfifo(app)
    else:
        app.symlink_to(outside / "marker" if kind == "absolute-link" else os.path.relpath(outside / "marker", app.parent))
    before = snapshot(outside)
    result = run_with_fifo_guard(app, "release", {"root": str(root), "release_id": "r2", "files": {"app": MARKER_SHA},
                                                  "staging": str(app.parent)})
    msg = one_sentence(result, "failed verification", "app")
    assert_r1_current(root, msg)
    assert not app.parent.exists(), "the failed upload (a dedicated staging dir) is removed"
    assert snapshot(outside) == before


@pytest.mark.parametrize("where", ["root", "releases", "current", "release-dir", "outside", "link"])
def test_release_refuses_a_staging_that_is_not_a_dedicated_upload_dir(root, outside, where):
    staging = {"root": root, "releases": root / "releases", "current": root / "current",
               "release-dir": root / "releases" / "r1", "outside": outside,
               "link": root / "releases" / ".staging-link"}[where]
    if where == "link":
        staging.symlink_to(outside)
    before_root, before_outside = snapshot(root), snapshot(outside)
    msg = one_sentence(release(root, staging=str(staging), files={"marker": MARKER_SHA}), "staging")
    assert_r1_current(root, msg)
    assert snapshot(root) == before_root and snapshot(outside) == before_outside


def test_release_refuses_keep_below_one(root):
    before = snapshot(root)
    msg = one_sentence(release(root, keep=0), "keep is 0")
    assert snapshot(root) == before and "set keep to 1" in msg


@pytest.mark.parametrize("state", ["rollback", "present"])
def test_release_refuses_a_current_that_is_a_directory(root, state):
    (root / "current").unlink()
    (root / "current").mkdir()
    (root / "current" / "data").write_text("an operator's file")
    before = snapshot(root)
    args = {"state": "rollback", "previous_id": "r1"} if state == "rollback" else {}
    msg = one_sentence(release(root, **args), "not the symlink", "no release is current")
    assert snapshot(root) == before


def test_release_refuses_a_checksum_that_is_not_hex(root):
    before = snapshot(root)
    one_sentence(release(root, files={"app": "../../etc/shadow"}), "files[app]", "sha256")
    assert snapshot(root) == before


def test_parallel_releases_on_one_root_take_turns(root):
    lock = os.open(root / ".swiftlinux-release.lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(release, root)
        try:
            with pytest.raises(concurrent.futures.TimeoutError):
                future.result(timeout=8)  # ansible starts in about 2 s; the module must still be waiting
            assert os.readlink(root / "current") == "releases/r1"
        finally:
            os.close(lock)
        assert future.result(timeout=120)["changed"]
    assert os.readlink(root / "current") == "releases/r2"


# ---- shared_objects: never replace what it did not write ------------------------------------------------------

def test_shared_objects_leaves_a_dest_holding_user_files(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "bag.json").write_text("{}")  # a bag.json alone does not make it ours
    (dest / "notes.txt").write_text("mine")
    before = snapshot(dest)
    one_sentence(run_module("shared_objects", {"executables": [built_fixture("hello", "dynamic")["products"]["hello"]
                                                               ["path"]], "dest": str(dest)}), "did not write")
    assert snapshot(dest) == before


def test_shared_objects_rebuild_keeps_a_file_a_user_added_to_the_bag(bag, tmp_path):
    own = tmp_path / "bag"
    exe = built_fixture("hello", "dynamic")["products"]["hello"]["path"]
    assert run_module("shared_objects", {"executables": [exe], "dest": str(own)})["changed"]
    (own / "lib" / "added.conf").write_text("user data")
    before = snapshot(own)
    msg = one_sentence(run_module("shared_objects", {"executables": [exe], "dest": str(own),
                                                     "static_sizes": {"hello": 1}}), "added after", "lib/added.conf")
    assert str(own) in msg
    assert snapshot(own) == before


def test_shared_objects_refuses_a_fifo_in_a_resource_bundle(tmp_path):
    product = built_fixture("resources", "dynamic")["products"]["resource-reader"]
    bundle = tmp_path / Path(product["resources"][0]).name
    shutil.copytree(product["resources"][0], bundle)
    os.mkfifo(bundle / "pipe")
    result = run_with_fifo_guard(bundle / "pipe", "shared_objects", {
        "executables": [product["path"]], "resources": [str(bundle)], "dest": str(tmp_path / "bag")})
    one_sentence(result, "pipe", "special file")
    assert not (tmp_path / "bag").exists()


# ---- end to end: a crafted artifact deployed by the service role ----------------------------------------------

@pytest.mark.slow
def test_service_role_refuses_a_crafted_artifact_and_the_host_is_unchanged(tmp_path):
    marker = "swiftlinux-contain-marker"
    art = copy_build(tmp_path)
    original = b"root:x:0:0 marker line\n"
    crafted_name = f"../../../../etc/{marker}"
    # The product file really holds the crafted content, so the checksum in the manifest matches it.
    (art / "hello").write_bytes(b"owned\n")

    def crafted(doc):
        doc["products"] = {crafted_name: {**doc["products"]["hello"], "sha256": sha(b"owned\n")}}
        return doc
    edit(art / "swift_build.json", crafted)
    playbook = tmp_path / "deploy.yml"
    playbook.write_text("- name: Deploy the crafted artifact\n  hosts: all\n  gather_facts: false\n"
                        "  roles:\n    - role: swiftlinux.deploy.service\n")
    container = start_systemd_host("swiftlinux-test-contain-e2e")
    try:
        container.exec_run(["sh", "-c", f"printf 'root:x:0:0 marker line\\n' > /etc/{marker}"])
        variables = {"service_name": "crafted", "service_port": 8191, "service_artifact": str(art),
                     "service_executable": crafted_name}
        result = run_playbook(playbook, container.name, variables)
        assert result.rc != 0, result.output
        assert len(result.failures) == 1, result.failures
        msg = result.failures[0]
        assert "\n" not in msg.strip() and "Traceback" not in result.output and "Module failed" not in msg, msg
        assert "not a plain file name" in msg and "rebuild the artifact" in msg, msg
        assert container.exec_run(["cat", f"/etc/{marker}"]).output == original
        assert container.exec_run(["test", "-e", "/opt/crafted"]).exit_code != 0, "nothing under /opt/crafted"
    finally:
        container.remove(force=True)
