# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A bag of shared objects: which libraries go in (plan_bag) and how they are laid out (stage_bag).

Layout under the bag root:
  bin/<exe>        the program with RUNPATH $ORIGIN/../lib, or for scope `all` a sh launcher;
  bin/<bundle>     SwiftPM resource bundles beside it;
  libexec/<exe>    scope `all` only: the real program, started by the launcher through lib/'s loader;
  libexec/swift-backtrace  the Swift runtime's backtracer (the toolchain's dynamic one, RUNPATH $ORIGIN/../lib), which
                   the runtime starts when the program crashes; for scope `all` it is bin/swift-backtrace, a launcher,
                   with the real file in libexec/ like a program's;
  lib/             real files, each SONAME a relative symlink to its file when the names differ;
                   every library that needs another bagged library gets RUNPATH $ORIGIN.
Policy (what each scope keeps) is data at the top; the code applying it stays generic.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _manifest
from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import version_key
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import file_digests
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import CXX_RUNTIME, GLIBC_FAMILY, SWIFT_CORE
from ansible_collections.swiftlinux.deploy.plugins.module_utils._resolve import (
    GLIBC_LOADERS,
    ResolveError,
    real_path,
    resolve_elf,
    resolve_ldd,
)

__all__ = ["BagError", "ResolveError", "SCOPES", "LAYOUT_VERSION", "BACKTRACER", "category", "plan_bag", "stage_bag",
           "clear_execstack", "debian_owners", "required_versions", "fingerprint", "file_sha256"]

SCOPES = ("swift", "non-system", "all")
LAYOUT_VERSION = 1
# glibc ships more than the libraries programs usually link; none of them may be bagged apart from glibc.
GLIBC_EXTRA = frozenset((
    "libmvec.so.1", "libBrokenLocale.so.1", "libnsl.so.1", "libthread_db.so.1", "libc_malloc_debug.so.0",
    "libnss_files.so.2", "libnss_dns.so.2", "libnss_compat.so.2", "libnss_hesiod.so.2", "libcidn.so.1",
))
BASE_SYSTEM = GLIBC_FAMILY | GLIBC_EXTRA | CXX_RUNTIME
# The toolchain's runtime libraries, by file-name prefix; also anything found under a lib/swift/ directory.
SWIFT_PREFIXES = ("libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime",
                  "libXCTest", "libTesting", "lib_Testing")
# Which categories each scope copies into lib/.
SCOPE_KEEPS = {
    "swift": frozenset(("swift",)),
    "non-system": frozenset(("swift", "other")),
    "all": frozenset(("swift", "other", "base", "loader")),
}
EXE_RUNPATH = "$ORIGIN/../lib"
LIB_RUNPATH = "$ORIGIN"
# The toolchain's dynamic backtracer, relative to the directory of its libswiftCore.so (usr/lib/swift/linux). It is
# preferred to swift-backtrace-static: it loads the Swift runtime libraries the bag carries anyway (about 2 MB more,
# not 10 MB) and needs no newer glibc or libstdc++ than they do.
BACKTRACER = "swift-backtrace"
TOOLCHAIN_BACKTRACER = os.path.join("..", "..", "..", "libexec", "swift", "linux", BACKTRACER)


class BagError(Exception):
    """A sentence for the person running the play."""


def category(name, path=None):
    """loader | base | swift | other, for a needed name and the file it resolved to."""
    if name in GLIBC_LOADERS or os.path.basename(name) in GLIBC_LOADERS:
        return "loader"
    if name in BASE_SYSTEM:
        return "base"
    if name.startswith(SWIFT_PREFIXES) or (path and "/lib/swift/" in path):
        return "swift"
    return "other"


class Plan:
    """Everything decided before a byte is written; stage_bag() only carries it out."""

    def __init__(self, scope):
        self.scope = scope
        self.executables = []   # dicts: name, source, facts, closure
        self.backtracer = None  # the same dict for the Swift backtracer, or None
        self.extras = []        # dicts: name, source, facts, closure
        self.libraries = {}     # name -> dict: name, source (as found), real, facts, category, bagged, for
        self.system_libraries = []
        self.runtime_problems = []
        self.warnings = []
        self.machine = None

    @property
    def bagged(self):
        return [lib for name, lib in sorted(self.libraries.items()) if lib["bagged"]]

    @property
    def loader(self):
        return next((lib for lib in self.bagged if lib["category"] == "loader"), None)

    def launched_by_loader(self, exe):
        return self.scope == "all" and exe["facts"]["interpreter"] is not None and self.loader is not None

    @property
    def backtracer_path(self):
        """Where the backtracer is started from, relative to the bag root; None without one."""
        if self.backtracer is None:
            return None
        return ("bin/" if self.launched_by_loader(self.backtracer) else "libexec/") + self.backtracer["name"]


def plan_bag(executables, extra_libraries, scope, resolver, get_facts, run=None, backtracer=None):
    """Resolve every executable and extra library, classify what they load, check the result.

    `executables` and `extra_libraries` are paths; `get_facts` is a _resolve.Facts; `run` runs ldd.
    `backtracer` is None (no backtracer), True (the toolchain's, beside the bagged libswiftCore.so) or a path.
    """
    plan = Plan(scope)
    names = {}
    for path in executables:
        name = os.path.basename(path.rstrip("/"))
        if name in names:
            raise BagError("two executables are both named %s (%s and %s); bin/ can hold only one, so rename one "
                           "or bag them separately." % (name, names[name], path))
        names[name] = path
        plan.executables.append(dict(name=name, source=real_path(path), given=path, facts=get_facts(path)))
    for path in extra_libraries:
        facts = get_facts(path)
        is_program = facts["interpreter"] is not None and facts["soname"] is None
        if facts["elf_type"] != "DYN" or facts["linkage"] != "dynamic" or is_program:
            what = "a program" if is_program else "a %s %s file" % (facts["linkage"], facts["elf_type"])
            raise BagError("extra library %s is not a shared library (it is %s); list only .so files the program "
                           "opens with dlopen." % (path, what))
        plan.extras.append(dict(name=facts["soname"] or os.path.basename(path), source=real_path(path),
                                given=path, facts=facts))
    _check_machines(plan)

    for item in plan.executables + plan.extras:
        if item["facts"]["linkage"] != "dynamic":
            item["closure"] = None
            plan.warnings.append("%s is statically linked (%s); it needs no shared libraries, so nothing is bagged "
                                 "for it." % (item["name"], item["facts"]["linkage"]))
            continue
        if resolver == "ldd":
            item["closure"] = resolve_ldd(item["given"], get_facts, run)
        else:
            item["closure"] = resolve_elf(item["given"], get_facts)
    _check_missing(plan)
    _collect(plan, get_facts)
    if backtracer:
        _plan_backtracer(plan, backtracer, resolver, get_facts, run)
    _check_loader(plan)
    _check_runtime(plan, get_facts)
    return plan


def _plan_backtracer(plan, backtracer, resolver, get_facts, run):
    """Add the backtracer and the libraries it loads; they go in by the bag's scope, like a program's."""
    if backtracer is True:
        core = plan.libraries.get(SWIFT_CORE)
        if core is None:
            plan.warnings.append("no backtracer was bagged: the programs do not load %s, so there is no toolchain to "
                                 "take swift-backtrace from; set backtracer to one, or backtrace=false to silence "
                                 "this." % SWIFT_CORE)
            return
        backtracer = os.path.normpath(os.path.join(os.path.dirname(core["real"]), TOOLCHAIN_BACKTRACER))
        if not os.path.isfile(backtracer):
            raise BagError("the toolchain of %s has no %s at %s; set backtracer to the swift-backtrace of that "
                           "toolchain, or backtrace=false to bag without one." % (core["real"], BACKTRACER, backtracer))
    name = os.path.basename(backtracer.rstrip("/"))
    if name in (e["name"] for e in plan.executables):
        raise BagError("the backtracer %s has the name of an executable of the bag; rename the executable, or set "
                       "backtrace=false." % backtracer)
    facts = get_facts(backtracer)
    if facts["elf_type"] != "EXEC" and (facts["interpreter"] is None or facts["soname"] is not None):
        raise BagError("backtracer %s is not a program (it is a %s %s file); set backtracer to the toolchain's "
                       "usr/libexec/swift/linux/swift-backtrace." % (backtracer, facts["linkage"], facts["elf_type"]))
    machine = "%s (%d-bit)" % (facts["machine"], facts["elf_class"])
    wanted = next(("%s (%d-bit)" % (e["facts"]["machine"], e["facts"]["elf_class"]) for e in plan.executables), machine)
    if machine != wanted:
        raise BagError("backtracer %s is for %s, but the bag's programs are for %s; set backtracer to the "
                       "swift-backtrace of a toolchain for %s, or backtrace=false."
                       % (backtracer, machine, wanted, wanted))
    item = dict(name=name, source=real_path(backtracer), given=backtracer, facts=facts, closure=None)
    if facts["linkage"] == "dynamic":
        item["closure"] = resolve_ldd(backtracer, get_facts, run) if resolver == "ldd" else \
            resolve_elf(backtracer, get_facts)
        if item["closure"].missing:
            raise BagError("cannot find %s, which the backtracer %s loads; set backtracer to one whose libraries are "
                           "installed, or backtrace=false." % (", ".join(sorted(item["closure"].missing)), backtracer))
        for lib_name, found in item["closure"].found.items():
            _add_library(plan, lib_name, found, get_facts, name, forced=False)
        plan.system_libraries = sorted(n for n, lib in plan.libraries.items() if not lib["bagged"])
    plan.backtracer = item


def _check_machines(plan):
    machines = {}
    for item in plan.executables + plan.extras:
        facts = item["facts"]
        machines.setdefault("%s (%d-bit)" % (facts["machine"], facts["elf_class"]), []).append(item["name"])
    if len(machines) > 1:
        raise BagError("one bag holds one architecture, but these differ: %s; bag each architecture separately."
                       % "; ".join("%s: %s" % (m, ", ".join(n)) for m, n in sorted(machines.items())))
    plan.machine = next(iter(machines)).split(" ")[0] if machines else None


def _check_missing(plan):
    missing = {}
    for item in plan.executables + plan.extras:
        closure = item["closure"]
        for name, needers in sorted((closure.missing if closure else {}).items()):
            who = sorted(set(os.path.basename(n) for n in needers)) or [item["name"]]
            missing.setdefault(name, set()).update(who)
    if missing:
        raise BagError("cannot find %d librar%s: %s. Install the packages that provide them, or list their paths "
                       "in extra_libraries." % (len(missing), "y" if len(missing) == 1 else "ies",
                                                "; ".join("%s (needed by %s)" % (name, ", ".join(sorted(who)))
                                                          for name, who in sorted(missing.items()))))


def _check_loader(plan):
    wanted = sorted(set(e["facts"]["interpreter"] for e in plan.executables if e["facts"]["interpreter"]))
    if plan.scope == "all" and wanted and plan.loader is None:
        raise BagError("scope all bags the dynamic loader, but %s is not on this machine; bag on a machine of the "
                       "programs' architecture and distribution, or choose scope non-system." % ", ".join(wanted))


def _collect(plan, get_facts):
    for item in plan.executables + plan.extras:
        closure = item["closure"]
        for name, found in (closure.found.items() if closure else ()):
            _add_library(plan, name, found, get_facts, item["name"], forced=False)
    for extra in plan.extras:
        _add_library(plan, extra["name"], extra["given"], get_facts, "extra_libraries", forced=True)
    plan.system_libraries = sorted(name for name, lib in plan.libraries.items() if not lib["bagged"])


def _add_library(plan, name, found, get_facts, requester, forced):
    real = real_path(found)
    facts = get_facts(real)
    existing = plan.libraries.get(name)
    if existing:
        if existing["real"] != real and existing["facts"]["sha256"] != facts["sha256"]:
            raise BagError("two different files have the SONAME %s: %s (for %s) and %s (for %s); lib/ can hold only "
                           "one, so make every program load the same file or drop one from extra_libraries."
                           % (name, existing["source"], ", ".join(sorted(existing["for"])), found, requester))
        existing["for"].add(requester)
        existing["bagged"] = existing["bagged"] or forced
        return
    kind = category(name, real)
    plan.libraries[name] = dict(name=name, source=found, real=real, facts=facts, category=kind,
                                bagged=forced or kind in SCOPE_KEEPS[plan.scope], **{"for": {requester}})


def _check_runtime(plan, get_facts):
    """The Swift runtime must exist once per process: a library that embeds it beside libswiftCore.so is a bug."""
    for exe in plan.executables:
        closure = exe["closure"]
        objects = [(exe["name"], exe["facts"])]
        objects += [(name, get_facts(path)) for name, path in (closure.found.items() if closure else ())]
        # Extra libraries are opened with dlopen into every program of the bag.
        objects += [(extra["name"], extra["facts"]) for extra in plan.extras]
        shared = any(name == SWIFT_CORE for name, dummy in objects)
        embedded = sorted(set(name for name, facts in objects
                              if facts["swift_runtime"] == "static" and name != SWIFT_CORE))
        if (shared and embedded) or len(embedded) > 1:
            plan.runtime_problems.append(
                "the Swift runtime would be loaded twice into %s: %s embed%s it statically%s; rebuild %s against the "
                "shared runtime (without --static-swift-stdlib), or bag a static_stdlib build of the program instead"
                % (exe["name"], ", ".join(embedded), "s" if len(embedded) == 1 else "",
                   " while %s is loaded too" % SWIFT_CORE if shared else "", " and ".join(embedded)))


def stage_bag(plan, stage, resources, run):
    """Write the bag into the empty directory `stage`; return (files, links, launch) for the manifest.

    `run(cmd)` runs patchelf and returns (rc, stdout, stderr).
    """
    bin_dir, lib_dir = os.path.join(stage, "bin"), os.path.join(stage, "lib")
    os.makedirs(bin_dir)
    os.makedirs(lib_dir)
    files, links = [], []
    lib_names = _lib_file_names(plan)
    for lib in plan.bagged:
        file_name = _plain_name(lib_names[lib["name"]], "library file")
        _plain_name(lib["name"], "library (from DT_NEEDED or SONAME)")
        target = os.path.join(lib_dir, file_name)
        if not os.path.exists(target):
            shutil.copyfile(lib["real"], target)
            os.chmod(target, 0o755 if lib["category"] == "loader" else 0o644)
            if _needs_runpath(plan, lib):
                _patchelf(run, target, LIB_RUNPATH)
            if plan.backtracer and lib["for"] == {plan.backtracer["name"]}:
                clear_execstack(target)
            files.append(_entry(stage, target, lib["real"], "loader" if lib["category"] == "loader" else "library"))
        if file_name != lib["name"]:
            os.symlink(file_name, os.path.join(lib_dir, lib["name"]))
            links.append({"path": "lib/" + lib["name"], "target": file_name})

    launch = {}
    for exe in plan.executables:
        name = _plain_name(exe["name"], "executable")
        launch[name], staged = _stage_program(plan, stage, exe, name, "executable", run)
        files += staged
    if plan.backtracer:
        files += _stage_program(plan, stage, plan.backtracer, _plain_name(plan.backtracer["name"], "backtracer"),
                                "backtracer", run)[1]

    for directory in resources:
        files += _copy_resources(stage, directory, links, link_into_lib=any(
            plan.launched_by_loader(exe) for exe in plan.executables))
    return files, links, launch


def _stage_program(plan, stage, item, name, kind, run):
    """Copy a program into bin/ (the backtracer: libexec/), or for scope all into libexec/ with a launcher in bin/;
    (its exec-form command, the file entries)."""
    loader, entries = plan.loader, []
    if plan.launched_by_loader(item):
        os.makedirs(os.path.join(stage, "libexec"), exist_ok=True)
        real = os.path.join(stage, "libexec", name)
        launcher = os.path.join(stage, "bin", name)
        with open(launcher, "w") as handle:
            handle.write(_launcher_script(name, loader["name"]))
        os.chmod(launcher, 0o755)
        entries.append(_entry(stage, launcher, None, "launcher"))
        command = ["lib/" + loader["name"], "--library-path", "lib", "--argv0", "bin/" + name, "libexec/" + name]
    else:
        where = "libexec" if kind == "backtracer" else "bin"
        os.makedirs(os.path.join(stage, where), exist_ok=True)
        real = os.path.join(stage, where, name)
        command = [where + "/" + name]
    shutil.copyfile(item["source"], real)
    os.chmod(real, 0o755)
    if item["facts"]["linkage"] == "dynamic" and item["facts"]["needed"]:
        _patchelf(run, real, EXE_RUNPATH)
    entries.append(_entry(stage, real, item["source"], kind))
    return command, entries


def _plain_name(name, what):
    """A name that becomes a file of the bag must not leave its directory: it may come from an untrusted ELF file."""
    try:
        return _manifest.check_name(name, what)
    except _manifest.ManifestError as exc:
        raise BagError("%s, so it cannot be a file in the bag; rebuild the program so it names its libraries by plain "
                       "SONAMEs" % exc)


def _lib_file_names(plan):
    """lib/ file name per bagged library: the real file's name, or its SONAME when two real names collide."""
    names, taken = {}, {}
    for lib in plan.bagged:
        wanted = os.path.basename(lib["real"])
        other = plan.libraries.get(wanted)
        if taken.get(wanted, lib["real"]) != lib["real"] or (other and other["real"] != lib["real"]):
            wanted = lib["name"]
        taken[wanted] = lib["real"]
        names[lib["name"]] = wanted
    return names


PT_GNU_STACK = 0x6474E551
PF_X = 1


def clear_execstack(path):
    """Drop the executable-stack request (PF_X on PT_GNU_STACK) of a shared library; True when there was one.

    Swift 6.3's libswiftRuntime.so asks for an executable stack (an assembly file without .note.GNU-stack), which the
    loader can only grant with mprotect(PROT_EXEC) on the stack, and MemoryDenyWriteExecute=yes in the service unit
    forbids that: the backtracer would fail to start exactly when a program crashes. Nothing in the runtime runs code
    on the stack, so the request is cleared on the bag's copy, as `execstack -c` would. Only libraries that the
    backtracer alone loads get this, never a program's own.
    """
    with open(path, "r+b") as handle:
        ident = handle.read(16)
        if ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            return False
        wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
        handle.seek(32 if wide else 28)
        phoff = struct.unpack(order + ("Q" if wide else "I"), handle.read(8 if wide else 4))[0]
        handle.seek(54 if wide else 42)
        phentsize, phnum = struct.unpack(order + "HH", handle.read(4))
        flags_at = 4 if wide else 24
        for index in range(phnum):
            handle.seek(phoff + index * phentsize)
            header = handle.read(phentsize)
            if len(header) < flags_at + 4 or struct.unpack_from(order + "I", header)[0] != PT_GNU_STACK:
                continue
            flags = struct.unpack_from(order + "I", header, flags_at)[0]
            if not flags & PF_X:
                return False
            handle.seek(phoff + index * phentsize + flags_at)
            handle.write(struct.pack(order + "I", flags & ~PF_X))
            return True
    return False


def _needs_runpath(plan, lib):
    """Only a library that loads another bagged one needs to look in lib/, and glibc's own never do."""
    if lib["category"] in ("loader", "base") and lib["name"] in GLIBC_FAMILY | GLIBC_EXTRA:
        return False
    needs_bagged = any(plan.libraries.get(n, {}).get("bagged") and plan.libraries[n]["category"] != "loader"
                       for n in lib["facts"]["needed"])
    return needs_bagged and (lib["facts"]["runpath"] != [LIB_RUNPATH] or lib["facts"]["rpath"])


def _patchelf(run, path, runpath):
    # patchelf writes DT_RUNPATH (converting a DT_RPATH); --force-rpath is deliberately not used.
    rc, out, err = run(["patchelf", "--set-rpath", runpath, path])
    if rc != 0:
        raise BagError("patchelf --set-rpath %s %s failed: %s" % (runpath, os.path.basename(path), (err or out).strip()))


def _launcher_script(name, loader):
    return """#!/bin/sh
# Starts %(name)s through the bag's own dynamic loader so the bundled glibc is used on any host.
# The library path is a loader argument, not LD_LIBRARY_PATH, so programs %(name)s starts see a clean environment.
self=$(readlink -f -- "$0" 2>/dev/null) || self=$0
bag=$(cd -- "$(dirname -- "$self")/.." && pwd -P) || exit 127
exec "$bag/lib/%(loader)s" --library-path "$bag/lib" --argv0 "$0" "$bag/libexec/%(name)s" "$@"
""" % dict(name=name, loader=loader)


def _copy_resources(stage, directory, links, link_into_lib):
    source = real_path(directory)
    if not os.path.isdir(source):
        raise BagError("resource bundle %s is not a directory; pass the bundle directories swift_build returns in "
                       "products[name].resources." % directory)
    name = _plain_name(os.path.basename(directory.rstrip("/")), "resource bundle")
    target = os.path.join(stage, "bin", name)
    if os.path.lexists(target):
        raise BagError("two resources are named %s; bin/ can hold only one of them." % name)
    _check_resource_links(source)
    shutil.copytree(source, target, symlinks=True)
    if link_into_lib:
        # Started through the loader, Bundle.main is the loader's directory (from /proc/self/exe): lib/.
        os.symlink(os.path.join("..", "bin", name), os.path.join(stage, "lib", name))
        links.append({"path": "lib/" + name, "target": "../bin/" + name})
    files = []
    for dirpath, dirnames, filenames in os.walk(target):
        dirnames.sort()
        for file_name in sorted(filenames):
            path = os.path.join(dirpath, file_name)
            relative = os.path.relpath(path, target)
            if os.path.islink(path):
                links.append({"path": os.path.relpath(path, stage), "target": os.readlink(path)})
                continue
            files.append(_entry(stage, path, os.path.join(source, relative), "resource"))
    return files


def _check_resource_links(source):
    """Refuse special files (a FIFO would hang the copy) and links leading out of the bundle, before copying."""
    for dirpath, dirnames, filenames in os.walk(source):
        for entry in dirnames + filenames:
            path = os.path.join(dirpath, entry)
            try:
                kind = _manifest.file_type(path)
            except _manifest.ManifestError:
                raise BagError("resource %s is a special file (FIFO, socket or device), which cannot be bagged; remove "
                               "it from the bundle %s." % (path, source))
            if kind != "link":
                continue
            resolved = real_path(path)
            if os.path.commonpath([resolved, source]) != source:
                raise BagError("resource %s is a symlink to %s, outside its bundle %s; the link would break in the bag, "
                               "so replace it with the file itself." % (path, resolved, source))


def _entry(stage, path, source, kind):
    sha256, sha1, size = _digests(path)
    return dict(path=os.path.relpath(path, stage), sha256=sha256, sha1=sha1, size=size, source=source, kind=kind,
                package=None, package_version=None)


def file_sha256(path):
    return _digests(path)[0]


def _digests(path):
    (sha256, sha1), size = file_digests(path, ("sha256", "sha1"))
    return sha256, sha1, size


def debian_owners(paths, run):
    """{path: (package, version)} from dpkg for the paths dpkg knows; {} where dpkg-query is missing.

    With merged /usr, dpkg records a library under /lib or /usr/lib whichever the package shipped,
    so each path is asked for under both spellings, before and after resolving symlinks.
    """
    spellings = {}
    for path in paths:
        for variant in _spellings(path):
            spellings.setdefault(variant, set()).add(path)
    if not spellings:
        return {}
    try:
        rc, out, err = run(["dpkg-query", "-S"] + sorted(spellings))
    except OSError:
        return {}
    if rc not in (0, 1):
        return {}
    owners = {}
    for line in out.splitlines():
        if line.startswith("diversion ") or ": " not in line:
            continue
        packages, owned = line.split(": ", 1)
        for path in spellings.get(owned.strip(), ()):
            owners.setdefault(path, packages.split(",")[0].strip())
    if not owners:
        return {}
    rc, out, err = run(["dpkg-query", "-W", "-f", "${binary:Package}\t${Version}\n"] + sorted(set(owners.values())))
    versions = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    return {path: (package, versions.get(package) or versions.get(package.split(":")[0])) for path, package in owners.items()}


def _spellings(path):
    out = []
    for candidate in (path, os.path.realpath(path)):
        out.append(candidate)
        if candidate.startswith("/usr/"):
            out.append(candidate[4:])
        elif candidate.startswith(("/lib", "/bin", "/sbin")):
            out.append("/usr" + candidate)
    return out


def required_versions(plan, files_facts):
    """Highest GLIBC_ and GLIBCXX_ versions needed by the bag's ELF files (not counting glibc's and libstdc++'s own)."""
    glibc, glibcxx = [], []
    for name, facts in files_facts:
        if name not in GLIBC_FAMILY | GLIBC_EXTRA:
            glibc.append(facts.get("glibc_required"))
        if name != "libstdc++.so.6":
            glibcxx.append(facts.get("glibcxx_required"))
    pick = [max((v for v in values if v), key=version_key, default=None) for values in (glibc, glibcxx)]
    return pick[0], pick[1]


def fingerprint(plan, options, resources):
    """sha256 over the inputs, the options and every resolved library's checksum."""
    blob = {
        "layout": LAYOUT_VERSION,
        "options": options,
        "executables": [(e["name"], e["facts"]["sha256"]) for e in plan.executables],
        "extras": [(e["name"], e["facts"]["sha256"]) for e in plan.extras],
        "backtracer": (plan.backtracer["name"], plan.backtracer["facts"]["sha256"]) if plan.backtracer else None,
        "libraries": [(lib["name"], lib["real"], lib["facts"]["sha256"], lib["bagged"])
                      for name, lib in sorted(plan.libraries.items())],
        "resources": [_tree_digest(directory) for directory in resources],
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def _tree_digest(directory):
    _check_resource_links(real_path(directory))  # before any file of it is opened: a FIFO would block the read
    digest = hashlib.sha256(os.path.basename(directory.rstrip("/")).encode())
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            digest.update(os.path.relpath(path, directory).encode() + b"\0")
            if os.path.islink(path):
                digest.update(b"link:" + os.readlink(path).encode())
            else:
                digest.update(_digests(path)[0].encode())
    return digest.hexdigest()
