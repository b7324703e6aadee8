# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Static facts about ELF files, read with pyelftools.

Nothing here executes the file (no ldd, no running the binary), so it works the same on
binaries built for another architecture. Private to this collection: the API may change.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct

try:
    from elftools.common.exceptions import ELFError as _PyElfError
    from elftools.construct.core import ConstructError as _ConstructError
    from elftools.elf.elffile import ELFFile as _ELFFile
except ImportError:
    HAS_ELFTOOLS = False
    _PyElfError = _ConstructError = _ELFFile = None
else:
    HAS_ELFTOOLS = True

__all__ = ["ElfError", "NotAnElfError", "ElfFileNotFoundError", "HAS_ELFTOOLS",
           "elf_facts", "is_elf", "version_key"]

_MAGIC = b"\x7fELF"
_DF_1_PIE = 0x08000000

# pyelftools names a machine by its EM_ constant; map the common ones to the names
# uname -m, Docker platforms and Swift toolchain tarballs use.
_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_AARCH64": "aarch64",
    "EM_ARM": "armv7",
    "EM_386": "i386",
    "EM_LOONGARCH": "loongarch64",
}
_SWIFT_SECTIONS = ("swift5_protocols", "swift5_typeref", "swift5_types", "swift5_fieldmd")
_SWIFT_RUNTIME_SYMBOLS = ("swift_retain", "swift_release", "swift_allocObject")
_VERSION_FAMILIES = {"glibc_required": "GLIBC", "glibcxx_required": "GLIBCXX", "cxxabi_required": "CXXABI"}

# pyelftools reports damaged files through its own ELFError most of the time, but a
# truncated or hand-edited file can also surface as these from struct/decoding code, or
# as OSError when a corrupt offset makes it seek before the start of the file.
_PARSE_ERRORS = (struct.error, ValueError, IndexError, KeyError, EOFError, AssertionError, OSError)


class ElfError(Exception):
    """A file could not be read as an ELF file."""


class NotAnElfError(ElfError):
    """The file exists but is not ELF (a script, a text file, a directory, an empty file)."""


class ElfFileNotFoundError(ElfError, FileNotFoundError):
    """The path does not exist."""


def version_key(version):
    """Sort key comparing dotted versions numerically, so "2.9" < "2.34".

    Non-numeric parts (as in "GLIBC_PRIVATE") sort before any number rather than raising.
    """
    return tuple(int(part) if part.isdigit() else -1 for part in str(version).split("."))


def is_elf(path):
    """True when path is a readable regular file starting with the ELF magic."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as stream:
            return stream.read(4) == _MAGIC
    except OSError:
        return False


def elf_facts(path):
    """Return a dict of facts about the ELF file at path; raise ElfError when that is impossible."""
    path = os.fspath(path)
    _check_readable_elf(path)
    if not HAS_ELFTOOLS:
        raise ElfError("Cannot inspect %s: the Python library pyelftools is not installed; "
                       "install it (pip install pyelftools) for the Python that runs this code." % path)
    try:
        with open(path, "rb") as stream:
            facts = dict(path=path, **_read_facts(_ELFFile(stream)))
    except (_PyElfError, _ConstructError) + _PARSE_ERRORS as exc:
        raise ElfError("%s starts like an ELF file but cannot be parsed (%s); it is probably truncated or corrupt, "
                       "so copy or build it again." % (path, exc)) from None
    sha256, size = _digest(path)
    facts.update(sha256=sha256, size=size)
    return facts


def _check_readable_elf(path):
    try:
        mode = os.stat(path).st_mode
        # Checked before opening: reading a FIFO or a terminal device would block forever.
        if stat.S_ISDIR(mode):
            raise NotAnElfError("%s is a directory, not an ELF file; give the path of a binary inside it." % path)
        if not stat.S_ISREG(mode):
            raise NotAnElfError("%s is not an ELF file (it is a device, pipe or socket); give the path of a compiled "
                                "binary or shared library." % path)
        with open(path, "rb") as stream:
            head = stream.read(64)
    except FileNotFoundError:
        raise ElfFileNotFoundError("%s does not exist; give the path of an ELF binary or shared library." % path) from None
    except OSError as exc:
        raise ElfError("Cannot read %s (%s); check that the file is readable by the user running this."
                       % (path, exc.strerror or exc)) from None
    if not head.startswith(_MAGIC):
        raise NotAnElfError("%s is not an ELF file (it is %s); give the path of a compiled binary or shared library."
                            % (path, _describe(head)))


def _describe(head):
    if not head:
        return "an empty file"
    if head.startswith(b"#!"):
        return "a script"
    if all(byte in b"\t\n\r" or 32 <= byte < 127 for byte in head):
        return "a text file"
    return "some other kind of file"


def _read_facts(elf):
    interpreter = None
    for segment in elf.iter_segments():
        if segment["p_type"] == "PT_INTERP":
            # Separate debug files keep the header but not the bytes, which reads back empty.
            interpreter = segment.get_interp_name() or None

    dynamic = _dynamic_entries(elf)
    needed = [value for tag, value in dynamic if tag == "DT_NEEDED"]
    flags_1 = next((value for tag, value in dynamic if tag == "DT_FLAGS_1"), 0)
    soname = next((value for tag, value in dynamic if tag == "DT_SONAME"), None)
    # pyelftools gives unknown (e.g. OS-specific) type values as plain integers.
    elf_type = str(elf["e_type"]).replace("ET_", "", 1)

    version_needs = _version_needs(elf)
    all_versions = [name for names in version_needs.values() for name in names]
    facts = dict(
        machine=_machine(elf),
        elf_class=elf.elfclass,
        endianness="little" if elf.little_endian else "big",
        elf_type=elf_type,
        interpreter=interpreter,
        needed=needed,
        rpath=_search_path(dynamic, "DT_RPATH"),
        runpath=_search_path(dynamic, "DT_RUNPATH"),
        soname=soname,
        linkage=_linkage(elf, interpreter, needed, flags_1, soname is not None),
        version_needs=version_needs,
        swift_runtime=_swift_runtime(elf, needed),
        build_id=_build_id(elf),
        debuglink=_debuglink(elf),
        has_debug_info=elf.get_section_by_name(".debug_info") is not None,
        stripped=elf.get_section_by_name(".symtab") is None,
    )
    for key, family in _VERSION_FAMILIES.items():
        facts[key] = _highest(all_versions, family)
    # What a library offers (e.g. a host's libc.so.6 defines GLIBC_2.36): the other side of version_needs.
    facts["version_definitions"] = _version_definitions(elf)
    facts["glibc_provided"] = _highest(facts["version_definitions"], "GLIBC")
    facts["glibcxx_provided"] = _highest(facts["version_definitions"], "GLIBCXX")
    return facts


def _machine(elf):
    machine = str(elf["e_machine"])
    wide = elf.elfclass == 64
    if machine == "EM_RISCV":
        return "riscv64" if wide else "riscv32"
    if machine == "EM_PPC64":
        return "ppc64le" if elf.little_endian else "ppc64"
    if machine == "EM_S390":
        return "s390x" if wide else "s390"
    return _MACHINES.get(machine, machine)


def _dynamic_entries(elf):
    """(tag, value) pairs of the dynamic table, strings already resolved.

    The PT_DYNAMIC segment is what the loader reads and survives section-header stripping;
    the .dynamic section is the fallback for objects that have no program headers.
    """
    tables = [s for s in elf.iter_segments() if s["p_type"] == "PT_DYNAMIC"]
    if not tables:
        tables = [s for s in elf.iter_sections() if s["sh_type"] == "SHT_DYNAMIC"]
    entries = []
    for table in tables[:1]:
        for tag in table.iter_tags():
            name = tag.entry.d_tag
            if name == "DT_NULL":
                break
            attribute = {"DT_NEEDED": "needed", "DT_RPATH": "rpath",
                         "DT_RUNPATH": "runpath", "DT_SONAME": "soname"}.get(name)
            entries.append((name, getattr(tag, attribute) if attribute else tag.entry.d_val))
    return entries


def _search_path(dynamic, tag_name):
    return [part for tag, value in dynamic if tag == tag_name for part in value.split(":") if part]


def _linkage(elf, interpreter, needed, flags_1, has_soname):
    if interpreter is not None or needed:
        return "dynamic"
    if elf["e_type"] == "ET_EXEC":
        return "static"
    # A self-relocating static-pie and a dependency-free shared library (ld.so itself) look
    # alike; the PIE flag settles it, and older linkers that omit it still give an executable
    # an entry point and no soname.
    if elf["e_type"] == "ET_DYN" and (flags_1 & _DF_1_PIE or (not has_soname and elf["e_entry"])):
        return "static-pie"
    return "dynamic"


def _version_needs(elf):
    needs = {}
    for section in elf.iter_sections():
        if section["sh_type"] != "SHT_GNU_verneed":
            continue
        for verneed, auxiliaries in section.iter_versions():
            names = needs.setdefault(verneed.name, set())
            names.update(aux.name for aux in auxiliaries)
    return {library: sorted(names, key=_symbol_version_key) for library, names in needs.items()}


def _version_definitions(elf):
    names = set()
    for section in elf.iter_sections():
        if section["sh_type"] == "SHT_GNU_verdef":
            for verdef, auxiliaries in section.iter_versions():
                if not verdef["vd_flags"] & 1:  # VER_FLG_BASE names the file itself, not a version
                    names.update(aux.name for aux in auxiliaries)
    return sorted(names, key=_symbol_version_key)


def _symbol_version_key(name):
    family, dummy, number = name.rpartition("_")
    return (family, version_key(number)) if family else (name, ())


def _highest(version_names, family):
    pattern = re.compile(r"^%s_(\d+(?:\.\d+)*)$" % family)
    numbers = [m.group(1) for m in map(pattern.match, version_names) if m]
    return max(numbers, key=version_key) if numbers else None


def _swift_runtime(elf, needed):
    if any(os.path.basename(lib).startswith("libswiftCore.so") for lib in needed):
        return "dynamic"
    # Every Swift object contributes swift5_* metadata sections and `strip` keeps them, so
    # they identify Swift code in stripped binaries; with no libswiftCore.so to load, the
    # runtime must have been linked in. Separate debug files keep them only as NOBITS.
    for name in _SWIFT_SECTIONS:
        section = elf.get_section_by_name(name)
        if section is not None and section["sh_type"] != "SHT_NOBITS":
            return "static"
    if _defines_any(elf, _SWIFT_RUNTIME_SYMBOLS):
        return "static"
    return "none"


def _defines_any(elf, names):
    for table_name in (".dynsym", ".symtab"):
        table = elf.get_section_by_name(table_name)
        if table is None or not hasattr(table, "get_symbol_by_name"):
            continue
        for name in names:
            for symbol in table.get_symbol_by_name(name) or ():
                if symbol["st_shndx"] != "SHN_UNDEF":
                    return True
    return False


def _build_id(elf):
    # Section-less files still carry their notes in PT_NOTE segments.
    containers = [s for s in elf.iter_sections() if s["sh_type"] == "SHT_NOTE"]
    containers += [s for s in elf.iter_segments() if s["p_type"] == "PT_NOTE"]
    for container in containers:
        for note in container.iter_notes():
            if note["n_type"] == "NT_GNU_BUILD_ID":
                return note["n_desc"]
    return None


def _debuglink(elf):
    section = elf.get_section_by_name(".gnu_debuglink")
    if section is None:
        return None
    name = section.data().split(b"\0", 1)[0]
    return name.decode("utf-8", "surrogateescape") or None


def _digest(path):
    sha256 = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            sha256.update(chunk)
            size += len(chunk)
    return sha256.hexdigest(), size
