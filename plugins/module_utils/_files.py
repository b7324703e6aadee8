# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""File helpers the modules share: checksums, a writability probe, manifests, staged directories."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile


def hash_stream(stream, algorithms=("sha256",)):
    """([hex digest per algorithm], size) of a binary stream, read in blocks: the one hashing loop."""
    digests = [hashlib.new(name) for name in algorithms]
    size = 0
    for block in iter(lambda: stream.read(1 << 20), b""):
        for digest in digests:
            digest.update(block)
        size += len(block)
    return [digest.hexdigest() for digest in digests], size


def open_regular(path, follow=True):
    """The regular file at path opened for binary reading, or None when there is none (missing, a directory, a FIFO,
    a device, unreadable, or with follow=False a symbolic link). A FIFO is not waited on."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def file_digests(path, algorithms=("sha256",)):
    """([hex digest per algorithm], size) of a file."""
    with open(path, "rb") as handle:
        return hash_stream(handle, algorithms)


def sha256_file(path):
    """Hex sha256 of a file, read in blocks."""
    return file_digests(path)[0][0]


def unwritable_reason(dest):
    """None when dest (or its nearest existing parent) accepts new entries, else why not.

    Creates and removes a probe directory: permission bits say nothing for root, read-only mounts or /proc.
    """
    parent = dest
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".swiftlinux-probe-", dir=parent))
    except OSError as exc:
        return "%s in %s" % (exc.strerror or exc, parent)
    return None


def read_json(path):
    """The JSON document at path, or None when it is missing or unreadable (e.g. a previous manifest)."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


OWNER_MARK = ".swiftlinux-output.json"


class NotOurs(Exception):
    """A directory that a module did not write, or that holds more than it wrote; the message says what to do."""


def _entries(top):
    """Every file, link and directory below top, relative to it, the owner mark left out; links are not followed."""
    found = []
    for current, dirs, files in os.walk(top):
        for name in dirs + files:
            rel = os.path.relpath(os.path.join(current, name), top)
            if rel != OWNER_MARK:
                found.append(rel)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(current, d))]
    return sorted(found)


def mark_output(stage, owner):
    """Record in a finished stage which module wrote it and every entry it holds."""
    with open(os.path.join(stage, OWNER_MARK), "w") as handle:
        json.dump({"owner": owner, "entries": _entries(stage)}, handle, indent=1, sort_keys=True)


def check_replaceable(dest, owner):
    """Raise NotOurs unless dest is absent, an empty directory, or exactly what `owner` wrote there before."""
    if not os.path.lexists(dest):
        return
    if os.path.islink(dest) or not os.path.isdir(dest):
        raise NotOurs("%s exists and is not a directory, so swiftlinux.deploy.%s will not replace it; choose a new or "
                      "empty dest, or remove it yourself" % (dest, owner))
    top = sorted(os.listdir(dest))
    if not top:
        return
    mark = read_json(os.path.join(dest, OWNER_MARK))
    if not isinstance(mark, dict) or mark.get("owner") != owner or not isinstance(mark.get("entries"), list):
        raise NotOurs("%s already holds files that swiftlinux.deploy.%s did not write (%s), so it will not replace "
                      "them; choose a new or empty dest, or move them away" % (dest, owner, ", ".join(top[:3])))
    added = sorted(set(_entries(dest)) - set(mark["entries"]))
    if added:
        raise NotOurs("%s holds files added after swiftlinux.deploy.%s wrote it (%s), so it will not replace them; "
                      "move them out of %s or choose another dest" % (dest, owner, ", ".join(added[:3]), dest))


def replace_directory(stage, dest, owner):
    """Put a fully written stage at dest, replacing only a directory that `owner` wrote (see check_replaceable).

    Raises NotOurs, leaving dest as it was, when dest holds anything else; removes stage on any failure.
    """
    try:
        check_replaceable(dest, owner)
        os.chmod(stage, 0o755)
        mark_output(stage, owner)
        if not os.path.lexists(dest):
            os.rename(stage, dest)
            return
        old = tempfile.mkdtemp(prefix=".%s.old-" % os.path.basename(dest.rstrip("/")),
                               dir=os.path.dirname(dest.rstrip("/")) or "/")
        os.rmdir(old)
        os.rename(dest, old)
        try:
            os.rename(stage, dest)
        except OSError:
            os.rename(old, dest)
            raise
        shutil.rmtree(old)
    finally:
        if os.path.isdir(stage):
            shutil.rmtree(stage)


def contains_bytes(path, needle, chunk_size=1 << 20):
    """Whether the file at `path` holds `needle` anywhere, read in chunks (a match across two reads counts)."""
    tail = b""
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle):]
    return False
