# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""File helpers the modules share: checksums, a writability probe, manifests, staged directories."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile


def sha256_file(path):
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def replace_directory(stage, dest):
    """Put a fully written staging directory at dest, replacing what was there; removes stage on failure."""
    try:
        os.chmod(stage, 0o755)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        os.rename(stage, dest)
    finally:
        if os.path.isdir(stage):
            shutil.rmtree(stage)
