# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Static facts about ELF files, read with pyelftools.

Nothing here executes the file (no ldd, no running the binary), so it works the same on
binaries built for another architecture. Private to this collection: the API may change.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
import struct

from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import sha256_file
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import machine_of_elf, version_key

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
           "elf_facts", "link_facts", "is_elf", "load_address", "version_key"]

_MAGIC = b"\x7fELF"
_DF_1_PIE = 0x08000000
_SHF_COMPRESSED = 0x800

_SWIFT_SECTIONS = ("swift5_protocols", "swift5_typeref", "swift5_types", "swift5_fieldmd")
_SWIFT_RUNTIME_SYMBOLS = ("swift_retain", "swift_release", "swift_allocObject")
_STRING_TAGS = {"DT_NEEDED": "needed", "DT_RPATH": "rpath", "DT_RUNPATH": "runpath", "DT_SONAME": "soname"}
_VERSION_FAMILIES = {"glibc_required": "GLIBC", "glibcxx_required": "GLIBCXX", "cxxabi_required": "CXXABI"}

# Reading a well-formed file touches each byte a few times (measured: under 3 times for libc.so.6, libstdc++ and
# libswiftCore.so, 0.3 MB in all for a 16 kB C program); a table that points back into itself or into a huge
# string makes pyelftools read far more.
# Every read is charged to a budget of this many times the file's size, plus a floor for tiny files, so a
# crafted file ends in an error instead of running for hours.
_READ_BUDGET_FACTOR = 32
_READ_BUDGET_FLOOR = 8 << 20
_READ_CALL_COST = 64  # bytes charged per read call, so zero-length reads at EOF cannot loop for free
# .gnu_debuglink holds a file name, padding and a CRC.
_MAX_DEBUGLINK = 4096

# pyelftools reports damaged files through its own ELFError most of the time, but a
# truncated or hand-edited file can also surface as these from struct/decoding code, as
# OSError when a corrupt offset makes it seek before the start of the file, as
# ArithmeticError for a zero entry size, or as TypeError/AttributeError when a field holds
# a value its decoder does not expect.
_PARSE_ERRORS = (struct.error, ValueError, IndexError, KeyError, EOFError, AssertionError, OSError,
                 ArithmeticError, TypeError, AttributeError, RecursionError)
# One name for everything a damaged file can raise (ansible-core 2.16's pylint rejects a tuple sum in `except`).
_UNREADABLE_ERRORS = (_PyElfError, _ConstructError, MemoryError) + _PARSE_ERRORS if HAS_ELFTOOLS else _PARSE_ERRORS


class ElfError(Exception):
    """A file could not be read as an ELF file."""


class NotAnElfError(ElfError):
    """The file exists but is not ELF (a script, a text file, a directory, an empty file)."""


class ElfFileNotFoundError(ElfError, FileNotFoundError):
    """The path does not exist."""


class _Corrupt(Exception):
    """Internal: a structural problem found while reading; becomes one ElfError sentence naming the file."""


class _BoundedReader(object):
    """A read-only view of an open file that never reads past the size it had when opened and charges every read.

    pyelftools trusts sizes and offsets from the file; through this view a size larger than the file reads
    only what is there (no huge allocation), and a loop in the file's tables runs out of budget.
    """

    def __init__(self, handle, size):
        self._handle = handle
        self._size = size
        self._pos = 0
        self._budget = _READ_BUDGET_FACTOR * size + _READ_BUDGET_FLOOR

    def seek(self, offset, whence=os.SEEK_SET):
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise _Corrupt("an offset points before the start of the file")
        self._pos = base + offset
        return self._pos

    def tell(self):
        return self._pos

    def read(self, size=-1):
        available = max(0, self._size - self._pos)
        size = available if size is None or size < 0 else min(size, available)
        self._budget -= size + _READ_CALL_COST
        if self._budget < 0:
            raise _Corrupt("reading its tables needs more than %d times its size, so they loop or overlap"
                           % _READ_BUDGET_FACTOR)
        if size == 0:
            return b""
        self._handle.seek(self._pos)
        data = self._handle.read(size)
        self._pos += len(data)
        return data

    def read_at(self, offset, size):
        self.seek(offset)
        return self.read(size)


def is_elf(path):
    """True when path is a readable regular file starting with the ELF magic."""
    try:
        if not os.path.isfile(path):
            return False
        with _open_regular(path) as stream:
            return stream.read(4) == _MAGIC
    except (OSError, NotAnElfError):
        return False


def elf_facts(path):
    """Return a dict of facts about the ELF file at path; raise ElfError when that is impossible."""
    facts, size = _parse(path, _read_facts)
    facts.update(sha256=sha256_file(facts["path"]), size=size)
    return facts


def link_facts(path):
    """Only what the loader reads to find an object's dependencies (machine, class, byte order, interpreter,
    NEEDED, RPATH, RUNPATH, SONAME), checked like elf_facts.

    The resolver reads this for every library an image or a bag holds; skipping the symbol tables, notes and
    the file hash that elf_facts reads makes it several times cheaper for the Swift runtime's big libraries.
    """
    return _parse(path, _read_link_facts)[0]


def _parse(path, read):
    path = os.fspath(path)
    _check_readable_elf(path)
    if not HAS_ELFTOOLS:
        raise ElfError("Cannot inspect %s: the Python library pyelftools is not installed; "
                       "install it (pip install pyelftools) for the Python that runs this code." % path)
    try:
        with _open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            reader = _BoundedReader(handle, size)
            elf = _ELFFile(reader)
            _check_layout(elf, size)
            return dict(path=path, **read(elf, reader)), size
    except _Corrupt as exc:
        raise ElfError(_unreadable(path, str(exc))) from None
    except _UNREADABLE_ERRORS as exc:
        raise ElfError(_unreadable(path, _one_line(exc))) from None


def load_address(path):
    """The page-aligned address of the lowest PT_LOAD segment: where the image starts in memory, before relocation.

    A crash address minus the image's start in memory plus this gives the address the file's symbols use.
    """
    path = os.fspath(path)
    _check_readable_elf(path)
    try:
        with _open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            elf = _ELFFile(_BoundedReader(handle, size))
            _check_layout(elf, size)
            loads = [segment["p_vaddr"] for segment in elf.iter_segments() if segment["p_type"] == "PT_LOAD"]
    except _Corrupt as exc:
        raise ElfError(_unreadable(path, str(exc))) from None
    except _UNREADABLE_ERRORS as exc:
        raise ElfError(_unreadable(path, _one_line(exc))) from None
    if not loads:
        raise ElfError(_unreadable(path, "it has no loadable segment"))
    return min(loads) & ~0xFFF


def _unreadable(path, what):
    return ("%s is not a readable ELF file: %s; it is probably truncated or corrupt, so copy or build it again."
            % (path, what))


def _one_line(exc):
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _open_regular(path):
    """Open path for reading, refusing anything but a regular file without blocking on a FIFO or device."""
    # O_NONBLOCK: should the path have become a FIFO since it was checked, opening it still returns at once.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAnElfError("%s is not an ELF file (it is a device, pipe or socket); give the path of a compiled "
                                "binary or shared library." % path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_readable_elf(path):
    try:
        # Checked before opening (of the file a symlink leads to, as libraries are often links): opening a FIFO or
        # reading a terminal device would block forever, and opening some devices has effects.
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise NotAnElfError("%s is a directory, not an ELF file; give the path of a binary inside it." % path)
        if not stat.S_ISREG(mode):
            raise NotAnElfError("%s is not an ELF file (it is a device, pipe or socket); give the path of a compiled "
                                "binary or shared library." % path)
        with _open_regular(path) as stream:
            head = stream.read(64)
    except FileNotFoundError:
        raise ElfFileNotFoundError("%s does not exist; give the path of an ELF binary or shared library." % path) from None
    except OSError as exc:
        raise ElfError("%s is not a readable ELF file: %s; check that the user running this may read it."
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


def _check_layout(elf, size):
    """Refuse header tables and sections that do not fit in the file, before pyelftools walks them."""
    sections = elf.num_sections()
    if sections:
        _check_table(elf, "e_shoff", "e_shentsize", sections, elf.structs.Elf_Shdr.sizeof(), "section", size)
        if not 0 <= elf["e_shstrndx"] < sections and elf["e_shstrndx"] != "SHN_UNDEF":
            raise _Corrupt("its section name table is section %s of %d" % (elf["e_shstrndx"], sections))
    segments = elf.num_segments()
    if segments:
        _check_table(elf, "e_phoff", "e_phentsize", segments, elf.structs.Elf_Phdr.sizeof(), "program", size)
    entry_sizes = {"SHT_SYMTAB": elf.structs.Elf_Sym.sizeof(), "SHT_DYNSYM": elf.structs.Elf_Sym.sizeof(),
                   "SHT_DYNAMIC": elf.structs.Elf_Dyn.sizeof(), "SHT_GNU_versym": 2}
    # Headers are read raw: building a Section object already reads its name and linked tables.
    for index in range(sections):
        header = elf._get_section_header(index)  # pylint: disable=protected-access
        kind = header["sh_type"]
        if kind in ("SHT_NULL", "SHT_NOBITS"):
            continue
        _check_span(header["sh_offset"], header["sh_size"], size, "section %d (%s)" % (index, kind))
        wanted = entry_sizes.get(kind)
        if wanted is not None and header["sh_entsize"] != wanted:
            raise _Corrupt("section %d (%s) has %d-byte entries, not %d" % (index, kind, header["sh_entsize"], wanted))
    for index in range(segments):
        header = elf._get_segment_header(index)  # pylint: disable=protected-access
        if header["p_type"] in ("PT_INTERP", "PT_DYNAMIC", "PT_NOTE"):
            _check_span(header["p_offset"], header["p_filesz"], size, "its %s segment" % header["p_type"])


def _check_table(elf, offset_field, size_field, count, entry_size, kind, size):
    if elf[size_field] != entry_size:
        raise _Corrupt("its %s headers are %d bytes each, not %d" % (kind, elf[size_field], entry_size))
    _check_span(elf[offset_field], count * entry_size, size, "its %d %s headers" % (count, kind))


def _check_span(offset, length, size, what):
    if offset > size or length > size - offset:
        raise _Corrupt("%s, %d bytes at offset %d, would end past the end of the file (%d bytes)"
                       % (what, length, offset, size))


def _interpreter(elf):
    for segment in elf.iter_segments():
        if segment["p_type"] == "PT_INTERP":
            # Separate debug files keep the header but not the bytes, which reads back empty.
            return segment.get_interp_name() or None
    return None


def _read_link_facts(elf, _reader):
    dynamic = _dynamic_entries(elf)
    return dict(
        machine=_machine(elf),
        elf_class=elf.elfclass,
        endianness="little" if elf.little_endian else "big",
        interpreter=_interpreter(elf),
        needed=[value for tag, value in dynamic if tag == "DT_NEEDED"],
        rpath=_search_path(dynamic, "DT_RPATH"),
        runpath=_search_path(dynamic, "DT_RUNPATH"),
        soname=next((value for tag, value in dynamic if tag == "DT_SONAME"), None),
    )


def _read_facts(elf, reader):
    interpreter = _interpreter(elf)
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
        debuglink=_debuglink(elf, reader),
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
    row = machine_of_elf(elf["e_machine"], elf.elfclass, "little" if elf.little_endian else "big")
    return row.name if row else str(elf["e_machine"])


def _dynamic_entries(elf):
    """(tag, value) pairs of the dynamic table, strings already resolved.

    The PT_DYNAMIC segment is what the loader reads and survives section-header stripping;
    the .dynamic section is the fallback for objects that have no program headers.
    """
    tables = [(s, s["p_filesz"]) for s in elf.iter_segments() if s["p_type"] == "PT_DYNAMIC"]
    if not tables:
        tables = [(s, s["sh_size"]) for s in elf.iter_sections() if s["sh_type"] == "SHT_DYNAMIC"]
    entries, offsets, string_size = [], [], None
    for table, table_size in tables[:1]:
        limit = table_size // elf.structs.Elf_Dyn.sizeof()
        for index, tag in enumerate(table.iter_tags()):
            name = tag.entry.d_tag
            if name == "DT_NULL" or index >= limit:
                break
            if name == "DT_STRSZ":
                string_size = tag.entry.d_val
            attribute = _STRING_TAGS.get(name)
            if attribute is None:
                entries.append((name, tag.entry.d_val))
                continue
            offsets.append((name, tag.entry.d_val))
            entries.append((name, getattr(tag, attribute)))
    for name, offset in offsets:
        # pyelftools reads whatever lies at an offset past the string table, or an empty string past the file.
        if string_size is not None and offset >= string_size:
            raise _Corrupt("its %s entry's string offset %d is past its string table (%d bytes)"
                           % (name, offset, string_size))
    for name, value in entries:
        if name in ("DT_NEEDED", "DT_SONAME") and not value:
            raise _Corrupt("its %s entry names nothing" % name)
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
        for verneed, auxiliaries in _versions(section):
            names = needs.setdefault(verneed.name, set())
            names.update(aux.name for aux in auxiliaries)
    return {library: sorted(names, key=_symbol_version_key) for library, names in needs.items()}


def _version_definitions(elf):
    names = set()
    for section in elf.iter_sections():
        if section["sh_type"] == "SHT_GNU_verdef":
            for verdef, auxiliaries in _versions(section):
                if not verdef["vd_flags"] & 1:  # VER_FLG_BASE names the file itself, not a version
                    names.update(aux.name for aux in auxiliaries)
    return sorted(names, key=_symbol_version_key)


def _versions(section):
    """section.iter_versions() with each auxiliary list read at once, refusing more entries than the section holds.

    The entry count (sh_info, vn_cnt) and the links between entries come from the file: a link of 0 or one that
    points back repeats entries, so the walk stops once it has read more than the section has room for.
    """
    room = section["sh_size"] // 8  # the smallest entry (a verdaux) is 8 bytes
    seen = 0
    for version, auxiliaries in section.iter_versions():
        listed = []
        for aux in itertools.chain((None,), auxiliaries):
            seen += 1
            if seen > room:
                raise _Corrupt("its %s section lists more versions than its %d bytes can hold (a looping or "
                               "oversized version chain)" % (section.name or section["sh_type"], section["sh_size"]))
            if aux is not None:
                listed.append(aux)
        yield version, listed


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
        if "sh_size" in container.header:
            end = container["sh_offset"] + container["sh_size"]
        else:
            end = container["p_offset"] + container["p_filesz"]
        for note in container.iter_notes():
            # pyelftools reads a name and description as long as the note claims and moves on past them; the
            # last description's padding to 4 bytes may lie past the container.
            if note["n_offset"] + note["n_size"] > (end + 3) & ~3:
                raise _Corrupt("a note at offset %d claims %d bytes of name and description, more than its "
                               "container holds" % (note["n_offset"], note["n_namesz"] + note["n_descsz"]))
            # Type 3 is also NT_STAPSDT, a SystemTap probe (libstdc++ has them); only the GNU owner's is the build-id.
            if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                return note["n_desc"]
    return None


def _debuglink(elf, reader):
    section = elf.get_section_by_name(".gnu_debuglink")
    # Read directly and capped: pyelftools would inflate a compressed section or allocate a NOBITS one's size.
    if section is None or section["sh_type"] == "SHT_NOBITS" or section["sh_flags"] & _SHF_COMPRESSED:
        return None
    name = reader.read_at(section["sh_offset"], min(section["sh_size"], _MAX_DEBUGLINK)).split(b"\0", 1)[0]
    return name.decode("utf-8", "surrogateescape") or None
