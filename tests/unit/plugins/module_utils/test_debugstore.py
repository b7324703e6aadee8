"""Unit tests for module_utils/_debugstore.py and _elfnote.py: build-ids as paths, the store's edges, note reading."""
from __future__ import annotations

import os
import struct

import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _debugstore, _elfnote
from ansible_collections.swiftlinux.deploy.plugins.module_utils._debugstore import StoreError

BUILD_ID = "ff9b009e9fd71ac24fed37fa2770e7d66c28fa39"


@pytest.mark.parametrize("bad", ["../../etc", "ff9b/../x", "", "abc", "g" * 40, "ab" * 65, "a" * 41, BUILD_ID + "\n0"])
def test_only_hex_build_ids_pass(bad):
    with pytest.raises(StoreError, match="is not a GNU build-id"):
        _debugstore.check_build_id(bad)


def test_build_ids_are_lower_case():
    assert _debugstore.check_build_id(BUILD_ID.upper()) == BUILD_ID


def test_a_folder_without_buildid_is_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="is not a debug store"):
        _debugstore.open_store(str(tmp_path))


def test_create_store_refuses_a_folder_holding_something_else(tmp_path):
    (tmp_path / "mine").write_text("x")
    with pytest.raises(StoreError, match="exists and is not a debug store"):
        _debugstore.create_store(str(tmp_path), check_mode=False)
    assert not (tmp_path / "buildid").exists()


def test_create_store_in_check_mode_writes_nothing(tmp_path):
    assert _debugstore.create_store(str(tmp_path / "new"), check_mode=True)
    assert not (tmp_path / "new").exists()
    assert _debugstore.create_store(str(tmp_path / "new"), check_mode=False)
    assert not _debugstore.create_store(str(tmp_path / "new"), check_mode=False)


def test_a_planted_link_cannot_lead_out_of_the_store(tmp_path):
    store = tmp_path / "store"
    (store / "buildid").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, store / "buildid" / BUILD_ID)
    with pytest.raises(StoreError, match="leads outside the store"):
        _debugstore.entry_file(_debugstore.open_store(str(store)), BUILD_ID, "debuginfo")


def elf_with_note(desc: bytes, name: bytes = b"GNU\0", kind: int = 3) -> bytes:
    """A minimal 64-bit little-endian ELF header, one PT_NOTE program header and the note."""
    note = struct.pack("<III", len(name), len(desc), kind) + name + desc
    note_offset = 64 + 56
    header = (b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, 1,
                                                                     64, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 4, 4, note_offset, 0, 0, len(note), len(note), 4)
    return header + phdr + note


def test_elfnote_reads_the_gnu_build_id(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(elf_with_note(bytes.fromhex(BUILD_ID)))
    assert _elfnote.build_id(str(path)) == BUILD_ID


@pytest.mark.parametrize("data", [b"", b"#!/bin/sh\n", b"\x7fELF", elf_with_note(b"\x01" * 20, name=b"XYZ\0"),
                                  elf_with_note(b"\x01" * 20)[:-10], elf_with_note(b"\x01" * 20, kind=1)])
def test_elfnote_returns_none_for_anything_else(tmp_path, data):
    path = tmp_path / "other"
    path.write_bytes(data)
    assert _elfnote.build_id(str(path)) is None


def test_elfnote_refuses_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    assert _elfnote.build_id(str(tmp_path / "fifo")) is None
    assert _elfnote.build_id(str(tmp_path)) is None
    assert _elfnote.build_id(str(tmp_path / "missing")) is None
