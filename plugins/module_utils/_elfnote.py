# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The GNU build-id of an ELF file from its PT_NOTE segments, in plain Python.

For hosts, where pyelftools is usually absent: only the header, the program headers and the note segments are
read, each bounded, so a hostile file costs at most a few hundred kilobytes of reading. Private to this collection.
"""

from __future__ import annotations

import struct

from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import open_regular

_MAX_PHDRS = 256
_MAX_NOTES_BYTES = 64 << 10
_PT_NOTE = 4
_NT_GNU_BUILD_ID = 3


def build_id(path):
    """The build-id as lower-case hex, or None when path is no readable ELF file or carries none."""
    handle = open_regular(path)  # a FIFO must not block the open
    if handle is None:
        return None
    with handle:
        try:
            return _read(handle)
        except (struct.error, OSError, ValueError):
            return None


def _read(handle):
    ident = handle.read(64)
    if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        return None
    wide = ident[4] == 2
    order = "<" if ident[5] == 1 else ">"
    if wide:
        phoff, = struct.unpack_from(order + "Q", ident, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", ident, 54)
    else:
        phoff, = struct.unpack_from(order + "I", ident, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", ident, 42)
    if phnum > _MAX_PHDRS or phentsize < (56 if wide else 32):
        return None
    for number in range(phnum):
        handle.seek(phoff + number * phentsize)
        entry = handle.read(phentsize)
        if wide:
            p_type, _flags, offset, _vaddr, _paddr, filesz = struct.unpack_from(order + "IIQQQQ", entry)
        else:
            p_type, offset, _vaddr, _paddr, filesz = struct.unpack_from(order + "IIIII", entry)
        if p_type != _PT_NOTE or filesz > _MAX_NOTES_BYTES:
            continue
        handle.seek(offset)
        found = _gnu_build_id(handle.read(filesz), order)
        if found:
            return found
    return None


def _gnu_build_id(notes, order):
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from(order + "III", notes, at)
        name_end = at + 12 + namesz
        desc_at = at + 12 + ((namesz + 3) & ~3)
        if desc_at + descsz > len(notes):
            return None
        if kind == _NT_GNU_BUILD_ID and notes[at + 12:name_end] == b"GNU\0" and 8 <= descsz <= 64:
            return notes[desc_at:desc_at + descsz].hex()
        at = desc_at + ((descsz + 3) & ~3)
    return None
