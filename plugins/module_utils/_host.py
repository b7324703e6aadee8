# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a host offers a Swift program, read on the host itself in one pass.

Used by the host_info module (on the target) and by the ldconfig_cache filter (on the controller).
The host is trusted (it is in the inventory), but reads stay bounded all the same.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import socket
import stat

from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import hash_stream, open_regular
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import machine_named, version_key

_LDCONFIG_LINE = re.compile(r"^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$")
# A version name as the dynamic string table stores it: NUL, GLIBCXX_3.4.30, NUL. libstdc++ defines the GLIBCXX
# versions and needs none from other libraries, so every such name in it is one it provides. Names that are
# not numbers (GLIBCXX_DEBUG_MESSAGE_LENGTH, GLIBCXX_TUNABLES) do not match.
_GLIBCXX_NAME = re.compile(rb"(?<=\x00)GLIBCXX_(\d+(?:\.\d+)*)(?=\x00)")  # NULs shared by neighbours
_SCAN_CHUNK = 1 << 20
LIBSTDCXX_READ_LIMIT = 64 << 20  # libstdc++.so.6 is about 2.5 MB; anything this big is not it


def ldconfig_cache(text, abi=None):
    """SONAME -> path from `ldconfig -p` output, preferring entries tagged with the native ABI `abi`."""
    found = {}
    for line in text.splitlines():
        match = _LDCONFIG_LINE.match(line)
        if not match:
            continue
        soname, tags, path = match.groups()
        if soname not in found or (abi and abi in tags and abi not in found[soname][0]):
            found[soname] = (tags, path)
    return {soname: path for soname, (dummy, path) in found.items()}


def highest_glibcxx(path, limit=LIBSTDCXX_READ_LIMIT):
    """The highest GLIBCXX_ version a libstdc++ file defines, e.g. '3.4.30', or None when it names none.

    The host has no pyelftools, and copying the library to the controller costs a round-trip and its bytes,
    so the version names are found in the file's bytes instead; tests compare the answer with the
    pyelftools reading of the same file for every test host. Reads at most `limit` bytes.
    """
    best = None
    tail = b""
    with open(path, "rb") as handle:
        remaining = limit
        while remaining > 0:
            chunk = handle.read(min(_SCAN_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            window = tail + chunk
            for match in _GLIBCXX_NAME.finditer(window):
                version = match.group(1).decode("ascii")
                if best is None or version_key(version) > version_key(best):
                    best = version
            tail = window[-64:]  # a name split across two reads is found in the next window
    return best


def glibc_version():
    """The C library's version as glibc reports it ('2.36'), or None on a libc that is not glibc."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        return None
    if not text or not text.startswith("glibc "):
        return None
    return text.split()[-1]


def port_in_use(host, port, timeout=1.0):
    """Whether something accepts TCP connections on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0  # refused, unreachable or timed out: nobody listens


def native_libraries(ldconfig_text, machine):
    """The host's library cache, preferring the native ABI of `machine` (uname -m)."""
    row = machine_named(machine)
    return ldconfig_cache(ldconfig_text, row.ldconfig if row else None)


PATH_ENTRIES_LIMIT = 256  # names listed for a directory in path_info


def path_info(path, limit=PATH_ENTRIES_LIMIT):
    """What is at path, without following a link: None, or a dict with `type` (directory, file, link, socket or other),
    `target` for a link and the sorted names of at most `limit` `entries` for a directory."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:  # for example no permission to look: something may be there
        return dict(type="other")
    if stat.S_ISLNK(mode):
        return dict(type="link", target=os.readlink(path))
    if stat.S_ISDIR(mode):
        try:
            names = sorted(os.listdir(path))
        except OSError:
            names = []
        return dict(type="directory", entries=names[:limit], truncated=len(names) > limit)
    if stat.S_ISSOCK(mode):
        return dict(type="socket")
    return dict(type="file" if stat.S_ISREG(mode) else "other")


def file_sha256(path):
    """Hex sha256 of the regular file at path, or None when there is none (missing, a link, a directory, a FIFO, or
    unreadable). Links on the way are followed, the last component is not."""
    handle = open_regular(path, follow=False)
    if handle is None:
        return None
    with handle:
        try:
            return hash_stream(handle)[0][0]
        except OSError:
            return None


def user_info(name):
    """uid, primary group name, home and shell of a user, or None when there is no such user."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = None
    return dict(uid=entry.pw_uid, group=group, home=entry.pw_dir, shell=entry.pw_shell)
