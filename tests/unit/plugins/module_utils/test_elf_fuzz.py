"""Hostile ELF files for module_utils/_elf.py: named crafted cases and a bounded property test.

Every input must give either a well-formed facts dict or one ElfError whose message is one line naming the file;
never another exception, never a hang, never unbounded memory. Each read runs in a forked child with a time
and memory limit, so a hang or a huge allocation shows up as a failed example instead of stalling the suite.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import resource
import select
import shutil
import signal
import struct
import subprocess
import time
import traceback
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support import swift_bin_dir

from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import ElfError, elf_facts

# Generous for a 2-CPU machine shared with other test runs: well-formed seeds read in well under a second.
SECONDS_PER_READ = 10
MEMORY_HEADROOM = 256 << 20

C_PROGRAM = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'
FACT_TYPES = {
    "path": str, "machine": str, "elf_class": int, "endianness": str, "elf_type": str, "interpreter": (str, type(None)),
    "needed": list, "rpath": list, "runpath": list, "soname": (str, type(None)), "linkage": str,
    "glibc_required": (str, type(None)), "glibcxx_required": (str, type(None)), "cxxabi_required": (str, type(None)),
    "version_needs": dict, "swift_runtime": str, "build_id": (str, type(None)), "debuglink": (str, type(None)),
    "has_debug_info": bool, "stripped": bool, "sha256": str, "size": int, "version_definitions": list,
    "glibc_provided": (str, type(None)), "glibcxx_provided": (str, type(None)),
}


# ---- running the reader with limits ------------------------------------------------------------

def read_bounded(path: Path):
    """elf_facts(path) in a forked child limited in time and memory: ("facts", dict), ("error", class, message),
    ("crash", traceback text) or ("hang", seconds)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(reader)
        try:
            data = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmData:")))
            limit = data * 1024 + MEMORY_HEADROOM
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
            signal.alarm(SECONDS_PER_READ)
            try:
                outcome = ("facts", elf_facts(path))
            except ElfError as exc:
                outcome = ("error", type(exc).__name__, str(exc))
            except BaseException:  # noqa: BLE001 -- anything else is what this test exists to catch
                outcome = ("crash", traceback.format_exc())
            os.write(writer, pickle.dumps(outcome))
        finally:
            os._exit(0)
    os.close(writer)
    started, chunks = time.monotonic(), []
    try:
        while True:
            ready = select.select([reader], [], [], SECONDS_PER_READ + 5)[0]
            chunk = os.read(reader, 1 << 16) if ready else b""
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(reader)
        if not chunks:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if not chunks:
        return ("hang", round(time.monotonic() - started, 1))
    return pickle.loads(b"".join(chunks))


def check_outcome(path: Path, data: bytes, outcome) -> None:
    """A correct facts dict, or one ElfError sentence naming the file; anything else fails."""
    kind = outcome[0]
    if kind == "facts":
        facts = outcome[1]
        assert set(facts) == set(FACT_TYPES), facts
        for key, types in FACT_TYPES.items():
            assert isinstance(facts[key], types), (key, facts[key])
        assert facts["linkage"] in ("static", "static-pie", "dynamic")
        assert facts["swift_runtime"] in ("dynamic", "static", "none")
        assert facts["elf_class"] in (32, 64) and facts["endianness"] in ("little", "big")
        assert all(isinstance(name, str) and name for name in facts["needed"])
        assert facts["size"] == len(data) and facts["sha256"] == hashlib.sha256(data).hexdigest()
        return
    if kind == "error":
        message = outcome[2]
        assert message.startswith(str(path)) and "\n" not in message and len(message) < 600, message
        assert message.endswith("."), message
        return
    if kind == "hang":
        pytest.fail(f"reading {path} did not finish within {outcome[1]} s", pytrace=False)
    pytest.fail(f"reading {path} raised something other than ElfError:\n{outcome[1]}", pytrace=False)


# ---- seeds: real ELF files -------------------------------------------------------------------

def _cc(source: str, out: Path, *flags: str) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.fail("cc is not on PATH; install gcc (scripts/ensure-system.sh does).", pytrace=False)
    source_file = out.with_suffix(".c")
    source_file.write_text(source, encoding="utf-8")
    proc = subprocess.run([cc, "-O1", *flags, str(source_file), "-o", str(out)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return out


class Seeds(dict):
    """Seed bytes by name; printed by name only, so a failing example's report stays readable."""

    def __repr__(self) -> str:
        return "Seeds(%s)" % ", ".join(self)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Seeds:
    """A small dynamic C program, a static one, and a small Swift library from the toolchain (no Swift build)."""
    out = tmp_path_factory.mktemp("elf-seeds")
    swift_library = swift_bin_dir().parent / "lib" / "swift" / "linux" / "libswift_Volatile.so"
    if not swift_library.is_file():
        pytest.fail(f"{swift_library} is missing; install a Swift toolchain (scripts/ensure-swift.sh).", pytrace=False)
    return Seeds(
        c_dynamic=_cc(C_PROGRAM, out / "c_dynamic").read_bytes(),
        c_static=_cc(C_PROGRAM, out / "c_static", "-static").read_bytes(),
        swift_library=swift_library.read_bytes(),
    )


def field_offsets(data: bytes) -> list[tuple[int, int]]:
    """(offset, width) of the header fields a reader trusts: ELF header, section and program headers, dynamic
    entries, note headers and version entries. Read with pyelftools from the unmodified seed."""
    from io import BytesIO

    elf = ELFFile(BytesIO(data))
    fields = [(0x04, 1), (0x05, 1), (0x10, 2), (0x12, 2), (0x18, 8), (0x20, 8), (0x28, 8),
              (0x36, 2), (0x38, 2), (0x3a, 2), (0x3c, 2), (0x3e, 2)]
    for index in range(elf.num_sections()):
        base = elf["e_shoff"] + index * elf["e_shentsize"]
        fields += [(base, 4), (base + 4, 4), (base + 8, 8), (base + 24, 8), (base + 32, 8), (base + 40, 4),
                   (base + 44, 4), (base + 56, 8)]
    for index in range(elf.num_segments()):
        base = elf["e_phoff"] + index * elf["e_phentsize"]
        fields += [(base, 4), (base + 8, 8), (base + 16, 8), (base + 32, 8)]
    for section in elf.iter_sections():
        start, size = section["sh_offset"], section["sh_size"]
        if section["sh_type"] == "SHT_DYNAMIC":
            fields += [(start + at, 8) for at in range(0, min(size, 64 * 16), 8)]
        elif section["sh_type"] == "SHT_NOTE":
            fields += [(start, 4), (start + 4, 4), (start + 8, 4)]
        elif section["sh_type"] in ("SHT_GNU_verneed", "SHT_GNU_verdef"):
            fields += [(start + at, 4) for at in range(0, min(size, 256), 4)]
    return [(offset, width) for offset, width in fields if offset + width <= len(data)]


SEED_FIELDS: dict[str, list[tuple[int, int]]] = {}

INTERESTING = (0, 1, 2, 7, 0x7f, 0xff, 0x100, 0xffff, 0x7fffffff, 0xffffffff, 1 << 32, 1 << 62, (1 << 64) - 1)


@st.composite
def mutations(draw, names):
    """A seed's name and a list of edits: overwrite a trusted field, flip bytes anywhere, or truncate."""
    name = draw(st.sampled_from(names))
    edits = draw(st.lists(st.one_of(
        st.tuples(st.just("field"), st.integers(0, 1 << 20),
                  st.one_of(st.sampled_from(INTERESTING), st.integers(0, (1 << 64) - 1))),
        st.tuples(st.just("flip"), st.integers(0, 1 << 24), st.integers(1, 255)),
        st.tuples(st.just("truncate"), st.floats(0.0, 1.0), st.just(0)),
    ), min_size=1, max_size=4))
    return name, edits


def apply_edits(data: bytes, fields: list[tuple[int, int]], edits) -> bytes:
    buffer = bytearray(data)
    for kind, where, value in edits:
        if kind == "field":
            offset, width = fields[where % len(fields)]
            if offset + width <= len(buffer):
                buffer[offset:offset + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
        elif kind == "flip" and buffer:
            buffer[where % len(buffer)] ^= value
        elif kind == "truncate":
            del buffer[int(len(buffer) * where):]
    return bytes(buffer)


# ---- named hostile inputs ----------------------------------------------------------------------

def _section(data: bytes, name: str):
    from io import BytesIO

    elf = ELFFile(BytesIO(data))
    index = elf.get_section_index(name)
    return elf["e_shoff"] + index * elf["e_shentsize"], elf.get_section(index)


def _segment(data: bytes, kind: str):
    from io import BytesIO

    elf = ELFFile(BytesIO(data))
    index = next(i for i, segment in enumerate(elf.iter_segments()) if segment["p_type"] == kind)
    return elf["e_phoff"] + index * elf["e_phentsize"], elf.get_segment(index)


def _put(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    buffer = bytearray(data)
    struct.pack_into("<" + fmt, buffer, offset, value)
    return bytes(buffer)


def _dynamic_entry(data: bytes, tag: int) -> int:
    section = _section(data, ".dynamic")[1]
    for at in range(section["sh_offset"], section["sh_offset"] + section["sh_size"], 16):
        if struct.unpack_from("<q", data, at)[0] == tag:
            return at
    raise AssertionError(f"no dynamic tag {tag}")


def absurd_section_size(data):
    header = _section(data, ".dynstr")[0]
    return _put(data, header + 32, "Q", 1 << 62)


def absurd_section_count(data):
    return _put(data, 0x3c, "H", 0xfff0)


def extended_section_count(data):
    # e_shnum 0 says "the count is in section 0's sh_size"; make that count absurd.
    from io import BytesIO

    shoff = ELFFile(BytesIO(data))["e_shoff"]
    return _put(_put(data, 0x3c, "H", 0), shoff + 32, "Q", 1 << 40)


def absurd_segment_count(data):
    # PN_XNUM: the program header count is in section 0's sh_info.
    from io import BytesIO

    shoff = ELFFile(BytesIO(data))["e_shoff"]
    return _put(_put(data, 0x38, "H", 0xffff), shoff + 44, "I", 0xffffffff)


def absurd_dynamic_segment(data):
    header = _segment(data, "PT_DYNAMIC")[0]
    return _put(data, header + 32, "Q", 1 << 60)


def absurd_note_size(data):
    note = _section(data, ".note.gnu.build-id")[1]
    return _put(data, note["sh_offset"] + 4, "I", 0xfffffff0)


def needed_past_string_table(data):
    return _put(data, _dynamic_entry(data, 1) + 8, "Q", 1 << 40)  # DT_NEEDED


def zero_symbol_entry_size(data):
    header = _section(data, ".dynsym")[0]
    return _put(data, header + 56, "Q", 0)


def looping_version_chain(data):
    # vn_next 0 and an absurd sh_info: pyelftools would read the same entry four billion times.
    header, section = _section(data, ".gnu.version_r")
    looped = _put(data, header + 44, "I", 0xffffffff)
    return _put(looped, section["sh_offset"] + 12, "I", 0)


def looping_version_auxiliaries(data):
    section = _section(data, ".gnu.version_r")[1]
    start = section["sh_offset"]
    aux = start + struct.unpack_from("<I", data, start + 8)[0]
    return _put(_put(data, start + 2, "H", 0xffff), aux + 12, "I", 0)  # vn_cnt, vna_next


def section_headers_past_eof(data):
    return _put(data, 0x28, "Q", len(data) - 10)


def truncated_half(data):
    return data[:len(data) // 2]


CRAFTED = [absurd_section_size, absurd_section_count, extended_section_count, absurd_segment_count,
           absurd_dynamic_segment, absurd_note_size, needed_past_string_table, zero_symbol_entry_size,
           looping_version_chain, looping_version_auxiliaries, section_headers_past_eof, truncated_half]


@pytest.mark.parametrize("craft", CRAFTED, ids=[craft.__name__ for craft in CRAFTED])
def test_crafted_elf_gives_one_clear_error(craft, seeds, tmp_path):
    data = craft(seeds["c_dynamic"])
    path = tmp_path / craft.__name__
    path.write_bytes(data)
    outcome = read_bounded(path)
    check_outcome(path, data, outcome)
    assert outcome[0] == "error" and outcome[1] == "ElfError", outcome
    assert outcome[2].startswith(f"{path} is not a readable ELF file: "), outcome[2]


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "fifo"])
def test_special_files_are_refused_before_opening(special, tmp_path):
    if special == "fifo":
        special = tmp_path / "fifo"
        os.mkfifo(special)
    outcome = read_bounded(Path(special))
    assert outcome[0] == "error" and outcome[1] == "NotAnElfError", outcome
    assert "device, pipe or socket" in outcome[2]


def test_seeds_read_correctly(seeds, tmp_path):
    """The unmodified seeds give facts, so the property test starts from files the reader understands."""
    for name, data in seeds.items():
        path = tmp_path / name
        path.write_bytes(data)
        outcome = read_bounded(path)
        check_outcome(path, data, outcome)
        assert outcome[0] == "facts", outcome
    assert read_bounded(tmp_path / "swift_library")[1]["swift_runtime"] == "dynamic"


# Derandomized with no example database, so CI runs the same 300 cases every time. No per-example deadline: the
# forked reader's alarm is the hard limit. No shrinking: shrinking a hang costs minutes; print_blob reproduces it.
@settings(max_examples=300, deadline=None, derandomize=True, database=None, print_blob=True,
          phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(case=st.data())
def test_mutated_elf_gives_facts_or_one_clear_error(case, seeds, tmp_path):
    """Random field overwrites, byte flips and truncations of real ELF files (300 cases, derandomized)."""
    name, edits = case.draw(mutations(sorted(seeds)))
    fields = SEED_FIELDS.setdefault(name, field_offsets(seeds[name]))
    data = apply_edits(seeds[name], fields, edits)
    path = tmp_path / "mutated"
    path.write_bytes(data)
    check_outcome(path, data, read_bounded(path))
