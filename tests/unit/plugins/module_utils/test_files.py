"""Unit tests for module_utils/_files.py: replace_directory replaces only what its owner wrote, on real directories."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import (
    OWNER_MARK,
    NotOurs,
    check_replaceable,
    open_regular,
    replace_directory,
)


def stage(tmp_path, name, content):
    directory = tmp_path / name
    (directory / "lib").mkdir(parents=True)
    (directory / "lib" / "file").write_text(content)
    return directory


def test_new_then_own_output_is_replaced_and_marked(tmp_path):
    dest = tmp_path / "dest"
    replace_directory(str(stage(tmp_path, "s1", "one")), str(dest), "shared_objects")
    mark = json.loads((dest / OWNER_MARK).read_text())
    assert mark == {"owner": "shared_objects", "entries": ["lib", "lib/file"]}
    replace_directory(str(stage(tmp_path, "s2", "two")), str(dest), "shared_objects")
    assert (dest / "lib" / "file").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"], "no stage or old copy left"


def test_a_directory_of_user_files_is_not_replaced(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    staged = stage(tmp_path, "s", "x")
    with pytest.raises(NotOurs, match="did not write .*notes.txt"):
        replace_directory(str(staged), str(dest), "shared_objects")
    assert (dest / "notes.txt").read_text() == "mine" and not staged.exists()


def test_another_modules_output_and_added_files_are_not_replaced(tmp_path):
    dest = tmp_path / "dest"
    replace_directory(str(stage(tmp_path, "s1", "one")), str(dest), "swift_build")
    with pytest.raises(NotOurs, match="did not write"):
        check_replaceable(str(dest), "shared_objects")
    (dest / "lib" / "added").write_text("user")
    with pytest.raises(NotOurs, match="added after .*lib/added"):
        replace_directory(str(stage(tmp_path, "s2", "two")), str(dest), "swift_build")
    assert (dest / "lib" / "file").read_text() == "one" and (dest / "lib" / "added").read_text() == "user"


def test_a_file_or_link_at_dest_is_not_replaced(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path)
    for name in ("file", "link"):
        with pytest.raises(NotOurs, match="is not a directory"):
            check_replaceable(str(tmp_path / name), "oci_image")
    check_replaceable(str(tmp_path / "absent"), "oci_image")
    (tmp_path / "empty").mkdir()
    check_replaceable(str(tmp_path / "empty"), "oci_image")


def test_open_regular_opens_regular_files_only(tmp_path):
    (tmp_path / "file").write_bytes(b"data")
    (tmp_path / "link").symlink_to("file")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")  # with no writer: a blocking open would hang the test
    for name, follow, expected in (("file", False, b"data"), ("link", True, b"data"), ("link", False, None),
                                   ("dir", True, None), ("fifo", True, None), ("missing", True, None)):
        handle = open_regular(tmp_path / name, follow=follow)
        if expected is None:
            assert handle is None, name
        else:
            with handle:
                assert handle.read() == expected, name
