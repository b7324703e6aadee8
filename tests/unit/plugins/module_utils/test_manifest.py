"""Unit tests for module_utils/_manifest.py: containment of untrusted paths and the manifest readers, on real files."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils._manifest import (
    BAG_MANIFEST,
    BUILD_MANIFEST,
    ManifestError,
    check_link,
    check_name,
    check_regular,
    check_relative,
    contained,
    file_type,
    read_bag,
    read_build,
    write,
)

SHA = "ab" * 32


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/etc", "a\0b", 3, None])
def test_check_name_refuses_anything_but_a_plain_name(name):
    with pytest.raises(ManifestError, match="not a plain file name"):
        check_name(name, "product name")


@pytest.mark.parametrize(("rel", "problem"), [
    ("/etc/shadow", "absolute path"), ("../x", "leaves its directory"), ("a/../../x", "leaves its directory"),
    (".", "leaves its directory"), ("", "not a relative path"), ("a\0", "not a relative path"),
])
def test_check_relative_refuses_paths_that_leave(rel, problem):
    with pytest.raises(ManifestError, match=problem):
        check_relative(rel, "files key")


def test_check_relative_normalises_what_stays_inside():
    assert check_relative("./bin//x/", "path") == "bin/x"
    assert check_name("libswiftCore.so", "library") == "libswiftCore.so"


def test_contained_follows_links_and_refuses_those_leading_out(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "lib").mkdir(parents=True)
    outside.mkdir()
    (root / "lib" / "libx.so.1").write_bytes(b"x")
    (root / "lib" / "libx.so").symlink_to("libx.so.1")
    (root / "out").symlink_to("../outside")
    assert contained(str(root), "lib/libx.so") == str(root / "lib" / "libx.so")
    assert check_link(str(root), "lib/libx.so") == "libx.so.1"
    with pytest.raises(ManifestError, match="outside"):
        contained(str(root), "out/anything")
    (root / "abs").symlink_to(root / "lib" / "libx.so.1")
    with pytest.raises(ManifestError, match="absolute path"):
        check_link(str(root), "abs")


def test_special_files_are_refused_by_lstat_without_opening(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ManifestError, match="special file"):
        file_type(str(tmp_path / "pipe"))  # opening it for reading would block forever
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "file").write_text("x")
    assert [file_type(str(tmp_path / n)) for n in ("file", "link", "missing")] == ["file", "link", "missing"]
    with pytest.raises(ManifestError, match="symbolic link where a regular file"):
        check_regular(str(tmp_path / "link"))


def build_doc():
    return {"link_mode": "static_executable", "fingerprint": "f", "swift_version": "6.1",
            "products": {"hello": {"sha256": SHA, "resources": ["/b/hello_hello.resources"], "backtracer": None,
                                   "debug_file": "/b/hello.debug",
                                   "elf": {"machine": "x86_64", "glibc_required": None, "glibcxx_required": None,
                                           "needed": []}}}}


def bag_doc():
    return {"scope": "all", "architecture": "x86_64", "executables": ["hello"], "system_libraries": [],
            "files": [{"path": "bin/hello", "sha256": SHA, "size": 1, "kind": "launcher"},
                      {"path": "libexec/swift-backtrace", "sha256": SHA, "size": 1, "kind": "backtracer"}],
            "backtracer": "libexec/swift-backtrace",
            "links": [{"path": "lib/libx.so", "target": "libx.so.1"}],
            "launch": {"hello": ["lib/ld.so", "--library-path", "lib", "libexec/hello"]}}


def test_readers_accept_what_the_writers_write(tmp_path):
    write(str(tmp_path), BUILD_MANIFEST, build_doc())
    write(str(tmp_path), BAG_MANIFEST, bag_doc())
    assert read_build(str(tmp_path)) == build_doc()
    assert read_bag(str(tmp_path)) == bag_doc()


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: [d], "(top level) must be an object"),
    (lambda d: d.pop("products") and d, "field products is missing"),
    (lambda d: d["products"]["hello"].update(sha256=True) or d, "products.hello.sha256 must be a string"),
    (lambda d: d["products"].update({"../x": d["products"]["hello"]}) or d, "not a plain file name"),
    (lambda d: d["products"]["hello"]["elf"].update(needed=[1]) or d, "elf.needed must be a list of strings"),
    (lambda d: d["products"]["hello"].update(debug_file="/b/..") or d, "debug_file"),
    (lambda d: d["products"]["hello"].update(backtracer="/b/swift backtrace") or d, "products.hello.backtracer"),
])
def test_read_build_names_file_and_field(tmp_path, change, field):
    (tmp_path / BUILD_MANIFEST).write_text(json.dumps(change(build_doc())))
    with pytest.raises(ManifestError) as caught:
        read_build(str(tmp_path))
    assert BUILD_MANIFEST in str(caught.value) and field in str(caught.value)
    assert str(caught.value).endswith("rebuild the artifact") and "\n" not in str(caught.value)


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["files"][0].update(path="../../etc/shadow") or d, "files[0].path"),
    (lambda d: d["files"][0].update(size=None) or d, "files[0].size must be an integer"),
    (lambda d: d["links"].append({"path": "/x", "target": "y"}) or d, "links[1].path"),
    (lambda d: d["launch"].update(hello=[]) or d, "launch.hello must be a non-empty list"),
    (lambda d: d["launch"]["hello"].append("/bin/sh") or d, "launch.hello[4]"),
    (lambda d: d.update(executables="hello") or d, "executables must be a list of strings"),
    (lambda d: d.update(backtracer="/opt/swift/usr/libexec/swift/linux/swift-backtrace") or d, "backtracer"),
    (lambda d: d.update(backtracer="libexec/swift-backtrace,enable=no") or d, "backtracer must be a path of letters"),
    (lambda d: d.update(backtracer="libexec/a b") or d, "backtracer must be a path of letters"),
])
def test_read_bag_names_file_and_field(tmp_path, change, field):
    (tmp_path / BAG_MANIFEST).write_text(json.dumps(change(bag_doc())))
    with pytest.raises(ManifestError) as caught:
        read_bag(str(tmp_path))
    assert BAG_MANIFEST in str(caught.value) and field in str(caught.value)


def test_invalid_json_and_a_manifest_that_is_no_file(tmp_path):
    (tmp_path / BAG_MANIFEST).write_bytes(b"\xff{")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_bag(str(tmp_path))
    os.mkfifo(tmp_path / BUILD_MANIFEST)
    with pytest.raises(ManifestError, match="special file"):
        read_build(str(tmp_path))
