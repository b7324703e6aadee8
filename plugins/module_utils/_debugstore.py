# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A debug-info store keyed by GNU build-id, in debuginfod's URL layout: <store>/buildid/<id>/{executable,debuginfo}.

The layout is the one debuginfod clients ask a server for, so the folder can be served as it is (Debian's
`debuginfod -F`, or any static HTTP server) to gdb, llvm-symbolizer and debuginfod-find. Build-ids are checked as
hex before they become a path, and nothing is written or read outside the store. Private to this collection.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _elfnote
from ansible_collections.swiftlinux.deploy.plugins.module_utils._backtrace import BUILD_ID
from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import ElfError, elf_facts
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import sha256_file

BUILDID_DIR = "buildid"
EXECUTABLE = "executable"
DEBUGINFO = "debuginfo"
DEBUG_SUFFIX = ".debug"
MAX_FILES = 10000


class StoreError(Exception):
    """One sentence naming the problem and what to do."""


def check_build_id(value, what="build-id"):
    """value as lower-case hex, or StoreError: a build-id becomes a directory name, so nothing else may pass."""
    text = str(value).strip().lower()
    if not BUILD_ID.match(text):
        raise StoreError("%s %r is not a GNU build-id (16 to 128 hex digits, an even number); take it from "
                         "swiftlinux.deploy.elf_info or the backtrace's Images section" % (what, str(value)[:80]))
    return text


def open_store(path):
    """The store's real path; StoreError when path is not a store (no buildid/ folder inside)."""
    root = os.path.realpath(path)
    if not os.path.isdir(os.path.join(root, BUILDID_DIR)) or os.path.islink(os.path.join(root, BUILDID_DIR)):
        raise StoreError("%s is not a debug store (no %s/ folder inside); file a build into it with "
                         "swiftlinux.deploy.debug_store first, or point at the folder that debug_store wrote"
                         % (path, BUILDID_DIR))
    return root


def create_store(path, check_mode):
    """Make path a store; True when it was not one. Refuses a non-empty folder that is not a store."""
    if os.path.isdir(os.path.join(path, BUILDID_DIR)):
        open_store(path)
        return False
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise StoreError("%s exists and is not a debug store (no %s/ folder inside); choose an empty or new "
                         "folder for the store" % (path, BUILDID_DIR))
    if not check_mode:
        os.makedirs(os.path.join(path, BUILDID_DIR), exist_ok=True)
    return True


def entry_file(root, build_id, name):
    """<root>/buildid/<id>/<name>, checked to stay inside root (a planted symlink cannot lead out)."""
    path = os.path.join(root, BUILDID_DIR, check_build_id(build_id), name)
    real = os.path.realpath(path)
    if os.path.commonpath([real, root]) != root:
        raise StoreError("%s leads outside the store %s (a symbolic link); remove it and file the build again"
                         % (path, root))
    return path


def _facts(path, role):
    try:
        facts = elf_facts(path)
    except ElfError as exc:
        raise StoreError("%s cannot be filed as %s: %s" % (path, role, exc)) from None
    if not facts["build_id"]:
        raise StoreError("%s has no GNU build-id, so a crash could never be matched to it; link it with "
                         "-Xlinker --build-id (swift build does by default)" % path)
    return facts


def plan(paths):
    """[(executable, debug file or None)], one per build-id, for each path: an ELF file, or a folder (a build or a
    bag) walked for ELF files, each paired with <name>.debug beside it. Links are not followed; .debug files are
    never entries. When one build-id turns up twice (a bag's copy of a program and the build it came from), the copy
    with a debug file wins, so filing both is still idempotent."""
    chosen = {}
    order = []
    for executable, debug in _candidates(paths):
        key = _elfnote.build_id(executable) or executable  # no build-id: file_build refuses it with a sentence
        if key not in chosen:
            order.append(key)
            chosen[key] = (executable, debug)
        elif debug and not chosen[key][1]:
            chosen[key] = (executable, debug)
    return [chosen[key] for key in order]


def _candidates(paths):
    pairs = []
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            for current, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(current, d)))
                for name in sorted(files):
                    candidate = os.path.join(current, name)
                    if name.endswith(DEBUG_SUFFIX) or os.path.islink(candidate) or not _is_elf(candidate):
                        continue
                    pairs.append(_pair(candidate))
                    if len(pairs) > MAX_FILES:
                        raise StoreError("%s holds more than %d ELF files; file a build or bag folder, not a tree "
                                         "of them" % (path, MAX_FILES))
        elif os.path.isfile(path):
            pairs.append(_pair(path))
        else:
            raise StoreError("%s does not exist or is not a file or folder; pass a swift_build dest, a bag or an "
                             "executable" % path)
    return pairs


def _is_elf(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def _pair(executable):
    debug = executable + DEBUG_SUFFIX
    return executable, debug if os.path.lexists(debug) else None


def file_build(root, executable, debug_file, check_mode):
    """File one executable (and its debug file) under its build-id; {build_id, path, files, changed}."""
    exe_facts = _facts(executable, "an executable")
    build_id = check_build_id(exe_facts["build_id"])
    wanted = {EXECUTABLE: executable}
    if debug_file:
        debug_facts = _facts(debug_file, "a debug file")
        if debug_facts["build_id"] != build_id:
            raise StoreError("%s has build-id %s but %s has %s: the debug file belongs to another build; build "
                             "again so both come from one link" % (debug_file, debug_facts["build_id"], executable,
                                                                   build_id))
        wanted[DEBUGINFO] = debug_file
    changed = []
    for name, source in sorted(wanted.items()):
        target = entry_file(root, build_id, name)
        if os.path.isfile(target) and not os.path.islink(target) and sha256_file(target) == sha256_file(source):
            continue
        changed.append(name)
        if not check_mode:
            _copy_into(source, target)
    return {"build_id": build_id, "path": os.path.dirname(entry_file(root, build_id, EXECUTABLE)),
            "executable": os.path.abspath(executable), "debug_file": os.path.abspath(debug_file) if debug_file else None,
            "changed": bool(changed), "written": changed}


def _copy_into(source, target):
    folder = os.path.dirname(target)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".filing-", dir=folder)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.chmod(temporary, 0o644)  # data for debuggers and servers, never run from the store
        os.replace(temporary, target)  # atomic; replaces a planted link itself, never what it points to
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
