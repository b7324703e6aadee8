# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""AWS Lambda deployment packages: the custom runtime's policy as data, what a package holds, the reproducible zip
and Lambda's quotas.

A custom runtime runs the file `bootstrap` at the root of the unzipped package (/var/task) on Amazon Linux 2023
(`provided.al2023`). Lambda counts a package by its unzipped bytes and, for a direct upload, its zipped bytes.
Private to this collection.
"""

from __future__ import annotations

import collections
import os
import re
import stat
import zipfile

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _manifest
from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import version_key
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import contains_bytes, sha256_file
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import dir_entry, file_entry, symlink_entry
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import CXX_RUNTIME, GLIBC_FAMILY, link_mode_of

try:
    from elftools.elf.elffile import ELFFile
except ImportError:  # the module reports the missing library through _elf.HAS_ELFTOOLS
    ELFFile = None

BOOTSTRAP = "bootstrap"
RUNTIME = "provided.al2023"
# Amazon Linux 2023: glibc 2.34 and GCC 11's libstdc++ (GLIBCXX_3.4.29); only these system libraries are assumed.
RUNTIME_GLIBC = "2.34"
RUNTIME_GLIBCXX = "3.4.29"
RUNTIME_LIBRARIES = GLIBC_FAMILY | CXX_RUNTIME
# Lambda's quotas, in bytes: a function and its layers unzipped (250 MB as Lambda counts it, 250 MiB), a zip
# uploaded directly (50 MB), and an uncompressed container image (10 GB).
UNZIPPED_LIMIT = 262144000
ZIPPED_LIMIT = 52428800
IMAGE_LIMIT = 10737418240
# Lambda's architectures by the collection's machine names (uname -m).
ARCHITECTURES = {"x86_64": "x86_64", "aarch64": "arm64"}
# CreateFunction's FunctionName, as a plain name (not an ARN): 1 to 64 letters, digits, '-' and '_'.
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
# The earliest time a zip entry can hold; with sorted names, fixed modes and one compression level, the same files
# give the same bytes (for the same zlib).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# zlib's default: level 9 made a 58 MB Foundation program's zip 0.4% smaller in 2.6 times the time.
COMPRESS_LEVEL = 6
_UNIX = 3  # ZipInfo.create_system: the external attributes hold a Unix mode
MODES = {"bootstrap": 0o755, "file": 0o644, "dir": 0o755, "symlink": 0o777}

# The container image: the package where AWS's provided base images keep a custom runtime, an empty task root.
RUNTIME_DIR = "/var/runtime"
TASK_DIR = "/var/task"
CA_BUNDLE_PATH = "/etc/ssl/certs/ca-certificates.crt"

Entry = collections.namedtuple("Entry", "name kind source target")


class LambdaError(Exception):
    """One sentence naming the problem, the numbers and what to try."""


def check_function_name(name):
    if not isinstance(name, str) or not FUNCTION_NAME.match(name):
        raise LambdaError("function_name %r is not a name Lambda accepts; use 1 to 64 letters, digits, '-' and '_', "
                          "for example orders-api" % (name,))
    return name


def lambda_architecture(facts):
    """Lambda's name for the executable's architecture; LambdaError for one Lambda does not run."""
    machine = facts["machine"]
    if machine not in ARCHITECTURES:
        raise LambdaError("%s is built for %s, which Lambda does not run; build it for x86_64 or aarch64 (Lambda's "
                          "arm64)" % (facts["path"], machine))
    return ARCHITECTURES[machine]


def _number(version_name, family):
    """'2.35' for 'GLIBC_2.35' in family GLIBC, else None."""
    prefix, number = version_name.rpartition("_")[::2]
    return number if prefix == family and number[:1].isdigit() else None


def symbols_by_version(path):
    """{version name: sorted undefined dynamic symbols bound to it}, read from .dynsym and .gnu.version.

    Only for naming symbols in a message: a file elf_facts already read; any problem gives {}.
    """
    found = {}
    try:
        with open(path, "rb") as handle:
            elf = ELFFile(handle)
            symbols, versions = elf.get_section_by_name(".dynsym"), elf.get_section_by_name(".gnu.version")
            needs = elf.get_section_by_name(".gnu.version_r")
            if symbols is None or versions is None or needs is None:
                return {}
            for index, symbol in enumerate(symbols.iter_symbols()):
                number = versions.get_symbol(index)["ndx"]
                if symbol["st_shndx"] != "SHN_UNDEF" or not isinstance(number, int) or number < 2:
                    continue
                found_version = needs.get_version(number)
                if found_version is not None:
                    found.setdefault(found_version[1].name, set()).add(symbol.name)
    except Exception:  # pylint: disable=broad-exception-caught  # naming symbols is a courtesy, never a failure
        return {}
    return {version: sorted(names) for version, names in found.items()}


def _too_new(facts, family, limit, symbols):
    """'GLIBC_2.35 (from libm.so.6: hypotf)' items for the needed versions of `family` above `limit`."""
    found = []
    for library, names in sorted(facts["version_needs"].items()):
        newer = sorted((n for n in names if _number(n, family) and version_key(_number(n, family)) > version_key(limit)),
                       key=lambda n: version_key(_number(n, family)))
        if newer:
            users = sorted({s for name in newer for s in symbols.get(name, ())})
            shown = ", ".join(users[:5]) + (" and %d more" % (len(users) - 5) if len(users) > 5 else "")
            found.append("%s (from %s%s)" % (newer[-1], library, ": " + shown if users else ""))
    return found


def check_runtime(facts, glibc=RUNTIME_GLIBC, glibcxx=RUNTIME_GLIBCXX):
    """The link mode of an executable Lambda's custom runtime can start; LambdaError naming what works otherwise.

    static_executable needs nothing. static_stdlib needs glibc, libstdc++ and libgcc_s from the runtime, at versions
    it has. dynamic needs the Swift runtime's shared libraries, which no zip-only package carries here.
    """
    mode = link_mode_of(facts)
    path = facts["path"]
    if mode == "dynamic":
        raise LambdaError("%s is a dynamic build: it needs the Swift runtime's shared libraries, which Lambda's %s "
                          "runtime does not have; build it with swift_build link_mode static_executable (needs only "
                          "the kernel) or static_stdlib (needs glibc %s or older)" % (path, RUNTIME, glibc))
    if mode == "static_executable":
        return mode
    missing = [lib for lib in facts["needed"] if lib not in RUNTIME_LIBRARIES]
    if missing:
        raise LambdaError("%s is a static_stdlib build that needs %s, which Lambda's %s runtime does not provide (it "
                          "has glibc, libstdc++ and libgcc_s); drop the module that needs it (FoundationNetworking "
                          "needs libcurl, FoundationXML libxml2), or ship a container image that carries it"
                          % (path, ", ".join(missing), RUNTIME))
    symbols = symbols_by_version(path) if facts.get("glibc_required") or facts.get("glibcxx_required") else {}
    too_new = _too_new(facts, "GLIBC", glibc, symbols) + _too_new(facts, "GLIBCXX", glibcxx, symbols)
    glibc_only = all(item.startswith("GLIBC_") for item in too_new)
    if too_new:
        raise LambdaError("%s is a static_stdlib build that needs %s, but Lambda's %s runtime has glibc %s and "
                          "GLIBCXX_%s; build it with link_mode static_executable (it then needs only the kernel)%s "
                          "build static_stdlib on a system with glibc %s or older (Amazon Linux 2023, RHEL 9, Amazon "
                          "Linux 2)%s"
                          % (path, " and ".join(too_new), RUNTIME, glibc, glibcxx, "," if glibc_only else " or", glibc,
                             ", or bind those glibc functions to their older versions with a C shim (docs/lambda.md)"
                             if glibc_only else ""))
    return mode


# ---- what goes in the package ------------------------------------------------------------------------------------

def bundle_entries(bundle, name):
    """Entries for a resource bundle directory placed at `name/`: files, directories, and symbolic links kept as
    links when they are relative and stay inside the bundle (refused otherwise, like FIFOs and devices)."""
    what = "resource bundle %s: symbolic link" % name
    entries = [Entry(name + "/", "dir", None, None)]
    for current, dirs, files in os.walk(bundle):
        links = [d for d in dirs if os.path.islink(os.path.join(current, d))]
        dirs[:] = sorted(d for d in dirs if d not in links)
        for item in sorted(dirs + files + links):
            full = os.path.join(current, item)
            rel = os.path.relpath(full, bundle)
            inside = name + "/" + rel
            kind = _manifest.file_type(full)
            if kind == "link":
                entries.append(Entry(inside, "symlink", None, _manifest.check_link(bundle, rel, what)))
            elif kind == "directory":
                entries.append(Entry(inside + "/", "dir", None, None))
            else:
                entries.append(Entry(inside, "file", full, None))
    return entries


def package_entries(bootstrap, bundles):
    """Every entry of the zip, sorted by name: `bootstrap` and each bundle directory (its name: its path)."""
    entries = [Entry(BOOTSTRAP, "bootstrap", bootstrap, None)]
    for name, path in sorted(bundles.items()):
        entries += bundle_entries(path, name)
    return sorted(entries, key=lambda entry: entry.name)


def unzipped_size(entries):
    """Bytes the package takes once unzipped: file sizes plus link targets."""
    return sum(os.path.getsize(e.source) if e.source else len(e.target or "") for e in entries)


def write_zip(path, entries):
    """Write the entries as a zip that is the same bytes for the same files: fixed time, order, modes and level."""
    with zipfile.ZipFile(path, "w") as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=ZIP_TIME)
            info.create_system = _UNIX
            mode = MODES[entry.kind]
            if entry.kind == "dir":
                info.external_attr = (stat.S_IFDIR | mode) << 16 | 0x10  # 0x10: the MS-DOS directory bit
                archive.writestr(info, b"")
            elif entry.kind == "symlink":
                info.external_attr = (stat.S_IFLNK | mode) << 16
                archive.writestr(info, entry.target.encode())
            else:
                info.external_attr = (stat.S_IFREG | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                # Python 3.13 names it compress_level; earlier versions have only the private slot.
                setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", COMPRESS_LEVEL)
                info.file_size = os.path.getsize(entry.source)
                with open(entry.source, "rb") as source, archive.open(info, "w") as target:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        target.write(block)
    return sha256_file(path), os.path.getsize(path)


# ---- the container image -----------------------------------------------------------------------------------------

def image_files(entries, ca_bundle):
    """The image's files (_oci entries): the package's entries under /var/runtime, with their zip modes, an empty
    /var/task, /tmp 1777 and the CA bundle."""
    if not os.path.isfile(ca_bundle):
        raise LambdaError("the CA bundle %s does not exist; install ca-certificates on the build host or set ca_bundle"
                          % ca_bundle)
    files = [dir_entry("tmp", mode=0o1777), dir_entry(TASK_DIR),
             file_entry(CA_BUNDLE_PATH, source=ca_bundle, mode=0o644)]
    for entry in entries:
        inside = os.path.join(RUNTIME_DIR, entry.name.rstrip("/"))
        if entry.kind == "dir":
            files.append(dir_entry(inside, mode=MODES["dir"]))
        elif entry.kind == "symlink":
            files.append(symlink_entry(inside, entry.target))
        else:
            files.append(file_entry(inside, source=entry.source, mode=MODES[entry.kind]))
    return files


def image_config(function_name, link_mode, swift_version):
    """The image's runtime settings. ENTRYPOINT is the bootstrap itself: on an empty base there is no runtime interface
    client to start a handler, and the program speaks the Runtime API on its own. No USER: Lambda runs the function as
    an unprivileged user of its own, which every file is readable by."""
    labels = {"io.swiftlinux.recipe": "lambda", "io.swiftlinux.link-mode": link_mode,
              "io.swiftlinux.lambda.function-name": function_name}
    if swift_version:
        labels["io.swiftlinux.swift-version"] = swift_version
    return {
        "Entrypoint": [os.path.join(RUNTIME_DIR, BOOTSTRAP)],
        "WorkingDir": TASK_DIR,
        "Env": sorted(["PATH=/usr/local/bin:/usr/bin:/bin", "LAMBDA_TASK_ROOT=" + TASK_DIR,
                       "LAMBDA_RUNTIME_DIR=" + RUNTIME_DIR, "SSL_CERT_FILE=" + CA_BUNDLE_PATH]),
        "Labels": labels,
    }


# ---- quotas --------------------------------------------------------------------------------------------------------

def human(size):
    """'301.2 MB (315,883,520 bytes)': Lambda's own MB (2**20 bytes) and the exact count."""
    return "%.1f MB (%s bytes)" % (size / 1048576.0, format(size, ","))


def uses_full_foundation(path):
    """Whether a static binary links all of Foundation (FoundationInternationalization and its ICU data)."""
    return contains_bytes(path, b"FoundationInternationalization")


def size_advice(stripped, full_foundation):
    """What may shrink the program, for a quota message."""
    tips = []
    if not stripped:
        tips.append("set strip=true (the debug info then stays beside the zip)")
    tips.append("rebuild with swift_build optimize_size=true (-Osize), and lto=full")
    if full_foundation:
        tips.append("import FoundationEssentials instead of Foundation, which leaves out "
                    "FoundationInternationalization and its ICU data")
    return tips


def check_quota(what, size, limit, tips):
    """LambdaError naming the size, the limit and what to try when size is over limit."""
    if size > limit:
        raise LambdaError("%s is %s, over Lambda's limit of %s; try: %s"
                          % (what, human(size), human(limit), "; ".join(tips)))
