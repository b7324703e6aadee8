# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Frames of a parsed crash turned into function, file and line: each image found by build-id in a debug store (a
folder or a debuginfod server), each address made relative to its image, then llvm-symbolizer (or addr2line) and
swift-demangle. Private to this collection.
"""

from __future__ import annotations

import json
import os
import re
import shutil

from ansible.module_utils.urls import open_url

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _debugstore
from ansible_collections.swiftlinux.deploy.plugins.module_utils._debugstore import StoreError
from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import ElfError, elf_facts, load_address

MAX_DOWNLOAD = 1 << 30
_MANGLED = re.compile(r"^_?\$[sSe]|^_T0|^\$[sS]")
_ADDR2LINE_ADDRESS = re.compile(r"^0x[0-9a-f]+$")


class Store:
    """Where debug files are looked up: a folder in the store layout, or a debuginfod URL (files fetched into
    `workdir`)."""

    def __init__(self, location, workdir, timeout=30):
        self.url = location.rstrip("/") if re.match(r"^https?://", location) else None
        self.root = None if self.url else _debugstore.open_store(location)
        self.location = location
        self.workdir = workdir
        self.timeout = timeout

    def find(self, build_id, image):
        """The debuginfo file for build_id (the executable when there is none), checked to be that build's ELF."""
        build_id = _debugstore.check_build_id(build_id, "the build-id of %s" % image)
        for name in (_debugstore.DEBUGINFO, _debugstore.EXECUTABLE):
            path = self._local(build_id, name) if self.root else self._fetch(build_id, name)
            if path:
                return _checked(path, build_id, image)
        raise StoreError("build-id %s (%s) is not in the debug store %s; file that build with "
                         "swiftlinux.deploy.debug_store, or point store at the one that has it"
                         % (build_id, image, self.location))

    def _local(self, build_id, name):
        path = _debugstore.entry_file(self.root, build_id, name)
        return path if os.path.isfile(path) else None

    def _fetch(self, build_id, name):
        url = "%s/buildid/%s/%s" % (self.url, build_id, name)
        target = os.path.join(self.workdir, "%s.%s" % (build_id, name))
        try:
            response = open_url(url, timeout=self.timeout, follow_redirects="safe")
        except Exception as exc:  # pylint: disable=broad-exception-caught # open_url raises many kinds
            if getattr(exc, "code", None) == 404:
                return None
            raise StoreError("the debuginfod server at %s did not answer %s: %s; check the URL and that the "
                             "server runs" % (self.url, url, exc)) from None
        written = 0
        with open(target, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                written += len(block)
                if written > MAX_DOWNLOAD:
                    raise StoreError("%s is larger than %d bytes; refusing it as a debug file" % (url, MAX_DOWNLOAD))
                out.write(block)
        return target


def _checked(path, build_id, image):
    try:
        facts = elf_facts(path)
    except ElfError as exc:
        raise StoreError("the debug file for %s (build-id %s) is unusable: %s" % (image, build_id, exc)) from None
    if facts["build_id"] != build_id:
        raise StoreError("the debug store's file %s has build-id %s, not %s; the store is damaged, so file that "
                         "build again" % (path, facts["build_id"], build_id))
    return path


def find_tools(dirs, which):
    """(symbolizer kind, path, swift-demangle path or None); StoreError naming what to install."""
    def look(name):
        for folder in list(dirs) + os.environ.get("PATH", "").split(os.pathsep):
            candidate = os.path.join(folder, name)
            if folder and os.access(candidate, os.X_OK) and os.path.isfile(candidate):
                return candidate
        return None

    order = ["llvm-symbolizer", "addr2line"] if which == "auto" else [which]
    for kind in order:
        path = look(kind)
        if path:
            return kind, path, look("swift-demangle")
    raise StoreError("%s not found on PATH or in the Swift toolchain (%s); install a Swift toolchain, which brings "
                     "llvm-symbolizer, or binutils for addr2line" % (" or ".join(order), ", ".join(dirs)))


def symbolicate(crash, store, build_ids, tools, run, allow_missing=False):
    """Symbolicated frames of the crashed thread, in order, inlined frames included; each a dict."""
    kind, symbolizer, demangler = tools
    images = {}
    for frame in crash["frames"]:
        name = frame["image"]
        if name in images:
            continue
        image = crash["images"].get(name)
        build_id = (image or {}).get("build_id") or build_ids.get(name) or build_ids.get((image or {}).get("path"))
        try:
            if not image:
                raise StoreError("frame %d points into %s, which the backtrace's Images section does not list; pass "
                                 "the whole log, with the Images section" % (frame["index"], name))
            if not build_id:
                raise StoreError("the backtrace gives no build-id for %s (%s); the Swift backtracer prints none for "
                                 "static executables, so pass build_ids: {%s: <its build-id>} (from elf_info, or "
                                 "swiftlinux.deploy.crash_log on the host)" % (name, image["path"], name))
            path = store.find(build_id, name)
            images[name] = dict(image, build_id=_debugstore.check_build_id(build_id), debug_file=path,
                                base=load_address(path))
        except (StoreError, ElfError) as exc:
            if not allow_missing:
                raise StoreError(str(exc)) from None
            images[name] = None

    wanted = {}
    for frame in crash["frames"]:
        image = images[frame["image"]]
        if image and "inlined" not in frame["tags"]:
            wanted.setdefault(frame["image"], set()).add(_lookup_address(frame, image))
    found = {name: _symbolize(kind, symbolizer, images[name]["debug_file"], sorted(addresses), run)
             for name, addresses in wanted.items()}

    frames = []
    for frame in crash["frames"]:
        if "inlined" in frame["tags"]:
            continue  # the backtracer's own inline expansion; the symbolizer gives it again below
        image = images[frame["image"]]
        base = dict(index=frame["index"], address="0x%x" % frame["address"], image=frame["image"],
                    build_id=image["build_id"] if image else None, offset=None)
        if not image:
            frames.append(dict(base, function=None, mangled=None, file=None, line=None, column=None, inlined=False))
            continue
        lookup = _lookup_address(frame, image)
        base["offset"] = "0x%x" % lookup
        entries = found[frame["image"]].get(lookup) or [{}]
        for depth, entry in enumerate(entries):
            frames.append(dict(base, mangled=entry.get("function"), function=entry.get("function"),
                               file=entry.get("file"), line=entry.get("line"), column=entry.get("column"),
                               inlined=depth < len(entries) - 1))
    _demangle(frames, demangler, run)
    return frames


def _lookup_address(frame, image):
    address = frame["address"] - image["start"] + image["base"]
    # A return address points after the call; the call's own line is one byte earlier.
    return address - 1 if "ra" in frame["tags"] and address > 0 else address


def _symbolize(kind, tool, debug_file, addresses, run):
    hexes = ["0x%x" % address for address in addresses]
    if kind == "llvm-symbolizer":
        rc, out, err = run([tool, "--obj=" + debug_file, "--output-style=JSON", "--inlines", "--no-demangle"] + hexes)
    else:
        rc, out, err = run([tool, "-e", debug_file, "-f", "-i", "-a"] + hexes)
    if rc != 0:
        raise StoreError("%s failed on %s: %s" % (tool, debug_file, (err or out).strip()[:500]))
    return _llvm_entries(out) if kind == "llvm-symbolizer" else _addr2line_entries(out)


def _llvm_entries(out):
    found = {}
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("["):
            continue
        for item in json.loads(line):
            found[int(item["Address"], 16)] = [
                {"function": symbol.get("FunctionName") or None, "file": symbol.get("FileName") or None,
                 "line": symbol.get("Line") or None, "column": symbol.get("Column") or None}
                for symbol in item.get("Symbol", [])]
    return found


def _addr2line_entries(out):
    found = {}
    current = None
    lines = out.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if _ADDR2LINE_ADDRESS.match(line):
            current = found.setdefault(int(line, 16), [])
            index += 1
            continue
        if current is not None and index + 1 < len(lines):
            where = lines[index + 1].strip()
            file, _sep, number = where.rpartition(":")
            number = number.split(" ", 1)[0]
            current.append({"function": None if line == "??" else line, "file": None if file in ("", "??") else file,
                            "line": int(number) if number.isdigit() and int(number) else None, "column": None})
        index += 2
    return found


def _demangle(frames, demangler, run):
    names = sorted({frame["mangled"] for frame in frames if frame["mangled"] and _MANGLED.match(frame["mangled"])})
    if not names or not demangler:
        return
    rc, out, _err = run([demangler, "--simplified", "--compact"], data="\n".join(names))
    demangled = out.splitlines()
    if rc != 0 or len(demangled) != len(names):
        return  # mangled names are still correct names
    table = dict(zip(names, demangled))
    for frame in frames:
        frame["function"] = table.get(frame["mangled"], frame["function"])


def render(crash, frames):
    """The backtrace as text, one frame a line: `#N function at file:line (image+offset)`."""
    lines = ["Crashed: %s" % crash["reason"]]
    for frame in frames:
        where = " at %s:%s" % (frame["file"], frame["line"]) if frame["file"] and frame["line"] else ""
        lines.append("#%-3d %s%s%s (%s+%s)" % (frame["index"], "[inlined] " if frame["inlined"] else "",
                                               frame["function"] or "<unknown>", where, frame["image"],
                                               frame["offset"] or frame["address"]))
    return lines


def cleanup(workdir):
    shutil.rmtree(workdir, ignore_errors=True)
