# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Find the shared libraries an ELF program loads, the way glibc's loader would.

Two resolvers give the same answer in the same shape:
  - `resolve_elf` reads files only (pyelftools): DT_NEEDED, DT_RPATH/DT_RUNPATH with $ORIGIN,
    /etc/ld.so.conf and its includes, then the default directories. It never runs anything, so it
    is safe for untrusted binaries and works for any architecture.
  - `resolve_ldd` asks the system loader through `ldd`, which loads the program; it refuses binaries
    the system loader would not load as they are (foreign architecture, unknown interpreter).
Both return a Closure per program: {needed name: path as found}, plus what could not be found and
which object needed it. LD_LIBRARY_PATH is deliberately ignored: the bag is resolved for the
target, not for the environment this happens to run in.
"""

from __future__ import annotations

import glob
import os
import platform
import re

from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import ElfError, elf_facts
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import GLIBC_LOADERS, canonical_machine, machine_named

__all__ = ["Closure", "ResolveError", "Facts", "ld_so_conf_dirs", "default_dirs", "resolve_elf", "resolve_ldd",
           "real_path"]

_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(.*?)\s*(?:\(0x[0-9a-f]+\))?\s*$")
_LDD_LOADER = re.compile(r"^\s*(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


class ResolveError(Exception):
    """A sentence for the person running the play."""


def real_path(path):
    """The fully resolved path; a symlink loop or a dangling link is a ResolveError naming the path."""
    try:
        return os.path.realpath(path, strict=True)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise ResolveError("%s is a symlink loop; point it at a real file." % path) from None
        raise ResolveError("%s does not exist (or is a dangling symlink); give the path of an existing file."
                           % path) from None


class Facts:
    """elf_facts() once per real file, shared by the resolvers and the layout.

    `reader` may be link_facts when only the dependencies are wanted (an image's libraries): the resolver
    reads nothing else.
    """

    def __init__(self, reader=elf_facts):
        self._cache = {}
        self._reader = reader

    def __call__(self, path):
        real = real_path(path)
        if real not in self._cache:
            self._cache[real] = self._reader(real)
        return self._cache[real]


class Closure:
    """What one program loads: needed name -> path as found, in load order."""

    def __init__(self):
        self.found = {}        # name -> path as found (not resolved through symlinks)
        self.missing = {}      # name -> [paths of the objects that need it]

    def real(self):
        """{name: real path}, the form two resolvers are compared in."""
        return {name: os.path.realpath(path) for name, path in self.found.items()}


def ld_so_conf_dirs(conf="/etc/ld.so.conf"):
    """Directories listed in ld.so.conf, following `include` globs (relative to the file's directory)."""
    dirs, seen = [], set()

    def read(path):
        real = os.path.realpath(path)
        if real in seen:  # an include cycle
            return
        seen.add(real)
        try:
            with open(path) as handle:
                lines = handle.read().splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("hwcap "):
                continue
            if line.startswith("include") and line[7:8] in (" ", "\t"):
                for pattern in line[8:].split():
                    pattern = pattern if pattern.startswith("/") else os.path.join(os.path.dirname(path), pattern)
                    for included in sorted(glob.glob(pattern)):
                        read(included)
                continue
            for directory in re.split(r"[:,\s]+", line):
                if directory.startswith("/") and directory.rstrip("/") not in dirs:
                    dirs.append(directory.rstrip("/") or "/")

    read(conf)
    return dirs


def default_dirs(machine, elf_class):
    """The loader's built-in search path: Debian multiarch directories, lib64 on 64-bit, /lib, /usr/lib."""
    dirs = []
    triplet = getattr(machine_named(machine), "multiarch", None)
    if triplet:
        dirs += ["/lib/" + triplet, "/usr/lib/" + triplet]
    if elf_class == 64:
        dirs += ["/lib64", "/usr/lib64"]
    return dirs + ["/lib", "/usr/lib"]


def _expand(entries, origin, facts):
    lib = "lib64" if facts["elf_class"] == 64 else "lib"
    out = []
    for entry in entries:
        entry = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
        entry = entry.replace("${LIB}", lib).replace("$LIB", lib)
        entry = entry.replace("${PLATFORM}", facts["machine"]).replace("$PLATFORM", facts["machine"])
        out.append(entry)
    return out


def _compatible(candidate, facts, get_facts):
    try:
        other = get_facts(candidate)
    except (ElfError, ResolveError):
        return False
    return (other["machine"], other["elf_class"], other["endianness"]) == \
        (facts["machine"], facts["elf_class"], facts["endianness"])


def resolve_elf(path, get_facts, system_dirs=None):
    """The Closure of the program or library at `path`, read from ELF headers only.

    Breadth-first like the loader; the first object found for a name wins, as in one process.
    """
    root_facts = get_facts(path)
    closure = Closure()
    search = system_dirs if system_dirs is not None else \
        ld_so_conf_dirs() + default_dirs(root_facts["machine"], root_facts["elf_class"])
    loaded_sonames = {}
    interpreter = root_facts["interpreter"]
    if interpreter and os.path.exists(interpreter):
        soname = get_facts(interpreter)["soname"] or os.path.basename(interpreter)
        loaded_sonames[soname] = interpreter
    # A queued object is (path, facts, $ORIGIN, the objects that loaded it, executable first).
    # The executable's $ORIGIN is its real directory, as the loader takes it from /proc/self/exe.
    queue = [(path, root_facts, os.path.dirname(real_path(path)), ())]
    while queue:
        obj_path, facts, origin, loaders = queue.pop(0)
        for name in facts["needed"]:
            if name in closure.missing:
                closure.missing[name].append(obj_path)
                continue
            if name in closure.found:
                continue
            if name in loaded_sonames:
                closure.found[name] = loaded_sonames[name]
                continue
            found = _search(name, facts, origin, loaders, search, get_facts)
            if found is None:
                closure.missing[name] = [obj_path]
                continue
            closure.found[name] = found
            lib_facts = get_facts(found)
            loaded_sonames.setdefault(lib_facts["soname"] or name, found)
            queue.append((found, lib_facts, os.path.dirname(found), loaders + ((facts, origin),)))
    if interpreter and os.path.exists(interpreter) and interpreter not in closure.found.values():
        # The loader is part of every dynamic process even when nothing names it in DT_NEEDED.
        # (A foreign program's loader is usually absent here; only a scope-all bag needs it.)
        closure.found.setdefault(os.path.basename(interpreter), interpreter)
    return closure


def _search(name, facts, origin, loaders, system_dirs, get_facts):
    if "/" in name:
        return name if os.path.isfile(name) and _compatible(name, facts, get_facts) else None
    dirs = []
    if not facts["runpath"]:
        # DT_RPATH of the requesting object, then of each object that loaded it, up to the executable;
        # an object that has DT_RUNPATH contributes no DT_RPATH (ld.so(8)).
        for obj_facts, obj_origin in ((facts, origin),) + tuple(reversed(loaders)):
            if not obj_facts["runpath"]:
                dirs += _expand(obj_facts["rpath"], obj_origin, obj_facts)
    dirs += _expand(facts["runpath"], origin, facts)
    dirs += system_dirs
    for directory in dirs:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and _compatible(candidate, facts, get_facts):
            return os.path.normpath(candidate)
    return None


def host_machine():
    """This machine's architecture in elf_facts' naming."""
    return canonical_machine(platform.machine())


def resolve_ldd(path, get_facts, run):
    """The Closure of `path` as `ldd` reports it. `run(cmd)` returns (rc, stdout, stderr).

    ldd makes the system loader load the program, so it is refused for anything that loader would
    not load as is: a foreign architecture or an interpreter that is not glibc's.
    """
    facts = get_facts(path)
    closure = Closure()
    if facts["machine"] != host_machine():
        raise ResolveError("resolver=ldd cannot inspect %s: it is built for %s and this host is %s; use resolver=elf, "
                           "which reads the file instead of loading it." % (path, facts["machine"], host_machine()))
    interpreter = facts["interpreter"]
    if interpreter and os.path.basename(interpreter) not in GLIBC_LOADERS:
        raise ResolveError("resolver=ldd refuses %s: its interpreter %s is not glibc's loader, and ldd would run it; "
                           "use resolver=elf, which only reads the file." % (path, interpreter))
    rc, out, err = run(["ldd", real_path(path)])
    if rc != 0:
        raise ResolveError("ldd %s failed: %s; use resolver=elf instead." % (path, (err or out).strip()))
    for line in out.splitlines():
        match = _LDD_LINE.match(line)
        if match:
            name, target = match.groups()
            if target == "not found":
                closure.missing[name] = []
            elif target.startswith("/"):
                closure.found[name] = target
            continue
        match = _LDD_LOADER.match(line)
        if match:
            loader = match.group(1)
            soname = get_facts(loader)["soname"] or os.path.basename(loader)
            closure.found.setdefault(soname, loader)
    # ldd names what is missing but not who needs it; the headers of what it did find tell.
    if closure.missing:
        for obj in [path] + list(closure.found.values()):
            for name in get_facts(obj)["needed"]:
                if name in closure.missing:
                    closure.missing[name].append(obj)
    return closure
