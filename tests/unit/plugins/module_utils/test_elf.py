"""Unit tests for module_utils/_elf.py against real binaries built once per session.

Swift programs are compiled with swiftc in each link mode, C programs with gcc, and programs for
other architectures with the toolchain's clang and lld (they are only read, never run). Every
file's dynamic section, interpreter, version needs and build ID are also checked against
binutils' readelf, so the facts agree with the tool people reach for by hand.
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support import swift_bin_dir, tool_env

from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import (
    ElfError,
    ElfFileNotFoundError,
    NotAnElfError,
    elf_facts,
    is_elf,
    version_key,
)

FACT_KEYS = {
    "path", "machine", "elf_class", "endianness", "elf_type", "interpreter", "needed", "rpath", "runpath",
    "soname", "linkage", "glibc_required", "glibcxx_required", "cxxabi_required", "version_needs",
    "swift_runtime", "build_id", "debuglink", "has_debug_info", "stripped", "sha256", "size",
    "version_definitions", "glibc_provided", "glibcxx_provided",
}

SWIFT_SOURCES = {
    "hello": 'print("hello")\n',
    "foundation": 'import Foundation\nprint(Date().timeIntervalSince1970 > 0, ProcessInfo.processInfo.processIdentifier)\n',
}
SWIFT_BUILDS = {
    "hello_dynamic": ("hello", ["-O"]),
    "hello_static_stdlib": ("hello", ["-O", "-static-stdlib"]),
    "hello_static_executable": ("hello", ["-O", "-static-executable"]),
    "hello_debug": ("hello", ["-Onone", "-g"]),
    "foundation_dynamic": ("foundation", ["-O"]),
    "foundation_static_stdlib": ("foundation", ["-O", "-static-stdlib"]),
    "foundation_static_executable": ("foundation", ["-O", "-static-executable"]),
}
C_MAIN = "int main(void) { return 0; }\n"
# Freestanding, so no target libc or sysroot is needed to link for a foreign architecture.
C_FREESTANDING = "void _start(void) { for (;;) {} }\n"
C_LIBRARY = "int answer(void) { return 42; }\n"
C_USES_LIBRARY = "int answer(void);\nvoid _start(void) { for (;;) { answer(); } }\n"
# clang target triple -> (machine, elf_class, endianness) expected from elf_facts
FOREIGN_TARGETS = {
    "aarch64-linux-gnu": ("aarch64", 64, "little"),
    "armv7-linux-gnueabihf": ("armv7l", 32, "little"),
    "riscv64-linux-gnu": ("riscv64", 64, "little"),
    "powerpc64le-linux-gnu": ("ppc64le", 64, "little"),
    "powerpc64-linux-gnu": ("ppc64", 64, "big"),
    "s390x-linux-gnu": ("s390x", 64, "big"),
    "i386-linux-gnu": ("i686", 32, "little"),
}
HOST_LOADER = "/lib64/ld-linux-x86-64.so.2"


def _tool(name: str) -> str:
    found = shutil.which(name, path=tool_env()["PATH"])
    if found is None:
        pytest.fail(f"{name} is not on PATH; install binutils and gcc (scripts/ensure-system.sh does).", pytrace=False)
    return found


def _run(*cmd, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(part) for part in cmd], capture_output=True, text=True, cwd=cwd, env=tool_env(), check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _clang(target: str, out: Path, *args) -> Path:
    # lld writes no build ID unless asked; ask, so notes are parsed in both byte orders.
    _run(swift_bin_dir() / "clang", f"--target={target}", "-nostdlib", "-fuse-ld=lld", "-O1", "-Wl,--build-id=sha1",
         *args, "-o", out)
    return out


@pytest.fixture(scope="session")
def binaries(tmp_path_factory) -> dict[str, Path]:
    """Every test binary by name; built once per session in a temporary directory."""
    out = tmp_path_factory.mktemp("elf")
    built: dict[str, Path] = {}
    for name, source in SWIFT_SOURCES.items():
        (out / f"{name}.swift").write_text(source, encoding="utf-8")
    for name, (source, flags) in SWIFT_BUILDS.items():
        # One module cache dir per build keeps swiftc from racing itself and the user's cache.
        _run(swift_bin_dir() / "swiftc", *flags, "-module-cache-path", out / "module-cache",
             out / f"{source}.swift", "-o", out / name, cwd=out)
        built[name] = out / name

    (out / "main.c").write_text(C_MAIN, encoding="utf-8")
    _run(_tool("gcc"), "-static-pie", "-O1", out / "main.c", "-o", out / "c_static_pie")
    _run(_tool("gcc"), "-static", "-no-pie", "-O1", out / "main.c", "-o", out / "c_static")
    built.update(c_static_pie=out / "c_static_pie", c_static=out / "c_static")

    (out / "start.c").write_text(C_FREESTANDING, encoding="utf-8")
    (out / "answer.c").write_text(C_LIBRARY, encoding="utf-8")
    (out / "uses.c").write_text(C_USES_LIBRARY, encoding="utf-8")
    for target in FOREIGN_TARGETS:
        built[f"static_{target}"] = _clang(target, out / f"static_{target}", "-static", out / "start.c")
    for target, loader in (("aarch64-linux-gnu", "/lib/ld-linux-aarch64.so.1"), ("s390x-linux-gnu", "/lib/ld64.so.1")):
        lib_dir = out / f"lib_{target}"
        lib_dir.mkdir()
        built[f"lib_{target}"] = _clang(target, lib_dir / "libanswer.so", "-shared", "-fPIC",
                                        "-Wl,-soname,libanswer.so.1", out / "answer.c")
        # --disable-new-dtags asks for the legacy DT_RPATH, whose value holds two directories.
        built[f"dynamic_{target}"] = _clang(target, out / f"dynamic_{target}", f"-Wl,--dynamic-linker={loader}",
                                            "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib:/opt/answer/lib",
                                            out / "uses.c", f"-L{lib_dir}", "-lanswer")

    shutil.copy(built["hello_static_stdlib"], out / "hello_static_stdlib_stripped")
    _run(_tool("strip"), out / "hello_static_stdlib_stripped")
    shutil.copy(built["hello_static_executable"], out / "hello_static_executable_stripped")
    _run(_tool("objcopy"), "--strip-all", out / "hello_static_executable_stripped")
    built.update(hello_static_stdlib_stripped=out / "hello_static_stdlib_stripped",
                 hello_static_executable_stripped=out / "hello_static_executable_stripped")

    # The usual split-debug recipe: keep the DWARF aside, link to it by name from the shipped binary.
    _run(_tool("objcopy"), "--only-keep-debug", built["hello_debug"], out / "hello_debug.debug")
    _run(_tool("objcopy"), "--strip-debug", "--add-gnu-debuglink=hello_debug.debug", built["hello_debug"],
         out / "hello_debug_split", cwd=out)
    built.update({"hello_debug.debug": out / "hello_debug.debug", "hello_debug_split": out / "hello_debug_split"})

    toolchain_lib = swift_bin_dir().parent / "lib" / "swift" / "linux"
    built.update({"/bin/ls": Path("/bin/ls"), HOST_LOADER: Path(HOST_LOADER),
                  "libswiftCore.so": toolchain_lib / "libswiftCore.so"})
    return built


def _readelf(path: Path) -> dict:
    """The facts readelf states about path, in elf_facts' vocabulary."""
    header = _run(_tool("readelf"), "-hW", path)
    program = _run(_tool("readelf"), "-lW", path)
    dynamic = _run(_tool("readelf"), "-dW", path)
    versions = _run(_tool("readelf"), "-VW", path)
    notes = _run(_tool("readelf"), "-nW", path)
    sections = _run(_tool("readelf"), "-SW", path)

    def tag(name: str) -> list[str]:
        return re.findall(rf"\({name}\)\s+[^\[]*\[([^\]]*)\]", dynamic)

    version_needs: dict[str, list[str]] = {}
    library = None
    for line in versions.split("Version needs section", 1)[1].splitlines() if "Version needs section" in versions else []:
        if "Version definition section" in line or "Version symbols section" in line:
            break
        if (file_match := re.search(r"File: (\S+)", line)):
            library = version_needs.setdefault(file_match.group(1), [])
        elif (name_match := re.search(r"Name: (\S+)", line)) and library is not None:
            library.append(name_match.group(1))
    interpreter = re.search(r"\[Requesting program interpreter: ([^\]]+)\]", program)
    build_id = re.search(r"Build ID: ([0-9a-f]+)", notes)
    return dict(
        elf_type=re.search(r"Type:\s+(\S+)", header).group(1),
        elf_class=int(re.search(r"Class:\s+ELF(\d+)", header).group(1)),
        endianness=re.search(r"Data:\s+.*?(little|big) endian", header).group(1),
        interpreter=interpreter.group(1) if interpreter else None,
        needed=tag("NEEDED"),
        rpath=[part for value in tag("RPATH") for part in value.split(":")],
        runpath=[part for value in tag("RUNPATH") for part in value.split(":")],
        soname=(tag("SONAME") or [None])[0],
        version_needs={lib: sorted(names) for lib, names in version_needs.items()},
        build_id=build_id.group(1) if build_id else None,
        stripped=not re.search(r"\]\s+\.symtab\s", sections),
        has_debug_info=bool(re.search(r"\]\s+\.debug_info\s", sections)),
    )


@pytest.fixture(scope="session")
def facts(binaries):
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = elf_facts(binaries[name])
        return cache[name]
    return get


ALL_BINARIES = [*SWIFT_BUILDS, "c_static_pie", "c_static", *(f"static_{t}" for t in FOREIGN_TARGETS),
                "lib_aarch64-linux-gnu", "dynamic_aarch64-linux-gnu", "lib_s390x-linux-gnu", "dynamic_s390x-linux-gnu",
                "hello_static_stdlib_stripped", "hello_static_executable_stripped", "hello_debug.debug",
                "hello_debug_split", "/bin/ls", HOST_LOADER, "libswiftCore.so"]


@pytest.mark.parametrize("name", ALL_BINARIES)
def test_facts_agree_with_readelf(name, binaries, facts):
    got = facts(name)
    assert set(got) == FACT_KEYS
    expected = _readelf(binaries[name])
    actual = {key: got[key] for key in expected}
    actual["version_needs"] = {lib: sorted(names) for lib, names in got["version_needs"].items()}
    assert actual == expected
    assert got["path"] == str(binaries[name])
    assert got["size"] == binaries[name].stat().st_size
    assert re.fullmatch(r"[0-9a-f]{64}", got["sha256"])


@pytest.mark.parametrize("name", ["hello_dynamic", "foundation_dynamic"])
def test_dynamic_swift(name, facts):
    got = facts(name)
    assert got["linkage"] == "dynamic"
    assert got["elf_type"] == "DYN"
    assert got["interpreter"] == HOST_LOADER
    assert got["needed"][0] == "libswiftCore.so"
    assert got["swift_runtime"] == "dynamic"
    # swiftc points the binary at the toolchain it was built with, nowhere else.
    assert got["runpath"] == [str(swift_bin_dir().parent / "lib" / "swift" / "linux")]
    assert got["rpath"] == []
    assert re.fullmatch(r"\d+\.\d+", got["glibc_required"])
    assert got["glibcxx_required"] is None and got["cxxabi_required"] is None
    assert got["machine"] == platform.machine() and got["elf_class"] == 64 and got["endianness"] == "little"
    assert re.fullmatch(r"[0-9a-f]{40}", got["build_id"])
    assert got["stripped"] is False and got["has_debug_info"] is False and got["debuglink"] is None


def test_foundation_dynamic_loads_foundation(facts):
    assert {"libFoundation.so", "libFoundationEssentials.so", "libdispatch.so"} <= set(facts("foundation_dynamic")["needed"])


@pytest.mark.parametrize("name", ["hello_static_stdlib", "foundation_static_stdlib"])
def test_static_stdlib_swift(name, facts):
    got = facts(name)
    assert got["linkage"] == "dynamic"
    assert got["interpreter"] == HOST_LOADER
    assert not [lib for lib in got["needed"] if lib.startswith(("libswift", "libFoundation", "libdispatch"))]
    # The static Swift runtime is C++ and still loads the system C++ runtime.
    assert {"libc.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libm.so.6"} <= set(got["needed"])
    assert got["swift_runtime"] == "static"
    assert got["runpath"] == [] and got["rpath"] == []
    assert re.fullmatch(r"3\.4\.\d+", got["glibcxx_required"])
    assert re.fullmatch(r"1\.3\.\d+", got["cxxabi_required"])


@pytest.mark.parametrize("name", ["hello_static_executable", "foundation_static_executable"])
def test_static_executable_swift(name, facts):
    got = facts(name)
    assert got["linkage"] == "static"
    assert got["elf_type"] == "EXEC"
    assert got["interpreter"] is None
    assert got["needed"] == []
    assert got["swift_runtime"] == "static"
    assert got["version_needs"] == {}
    assert got["glibc_required"] is None and got["glibcxx_required"] is None


def test_glibc_required_is_the_numeric_maximum_over_all_libraries(facts):
    got = facts("foundation_static_stdlib")
    glibc = [name[len("GLIBC_"):] for names in got["version_needs"].values() for name in names
             if re.fullmatch(r"GLIBC_[\d.]+", name)]
    assert got["glibc_required"] == max(glibc, key=lambda v: [int(p) for p in v.split(".")])
    assert all(names == sorted(names, key=lambda n: (n.rpartition("_")[0], version_key(n.rpartition("_")[2])))
               for names in got["version_needs"].values())


def test_static_pie_c_program(facts):
    got = facts("c_static_pie")
    assert (got["linkage"], got["elf_type"], got["interpreter"], got["needed"]) == ("static-pie", "DYN", None, [])
    assert got["swift_runtime"] == "none"


def test_static_c_program(facts):
    got = facts("c_static")
    assert (got["linkage"], got["elf_type"], got["interpreter"], got["needed"]) == ("static", "EXEC", None, [])


def test_system_binary_is_not_swift(facts):
    got = facts("/bin/ls")
    assert got["swift_runtime"] == "none"
    assert got["linkage"] == "dynamic"
    assert "libc.so.6" in got["needed"]


def test_dependency_free_shared_library_is_not_static_pie(facts):
    got = facts(HOST_LOADER)
    assert got["soname"] == os.path.basename(HOST_LOADER)
    assert (got["linkage"], got["interpreter"], got["needed"]) == ("dynamic", None, [])


def test_swift_runtime_library_itself(facts):
    got = facts("libswiftCore.so")
    assert got["soname"] == "libswiftCore.so"
    assert got["runpath"] == ["$ORIGIN"]
    # The runtime lives in this file rather than in a library it loads.
    assert got["swift_runtime"] == "static"


@pytest.mark.parametrize("name", ["hello_static_stdlib", "hello_static_executable"])
def test_stripping_keeps_swift_detection(name, facts):
    original, stripped = facts(name), facts(f"{name}_stripped")
    assert original["stripped"] is False
    assert stripped["stripped"] is True
    assert stripped["swift_runtime"] == original["swift_runtime"] == "static"
    assert stripped["build_id"] == original["build_id"]
    assert stripped["sha256"] != original["sha256"] and stripped["size"] < original["size"]


def test_split_debug_info(facts):
    assert facts("hello_debug")["has_debug_info"] is True
    assert facts("hello_debug")["debuglink"] is None
    split = facts("hello_debug_split")
    assert split["debuglink"] == "hello_debug.debug"
    assert split["has_debug_info"] is False
    debug = facts("hello_debug.debug")
    assert debug["has_debug_info"] is True
    assert debug["build_id"] == split["build_id"] == facts("hello_debug")["build_id"]
    # Only NOBITS placeholders of the code are left in a debug file: no loader, no runtime in it.
    assert debug["interpreter"] is None
    assert debug["swift_runtime"] == "none"


@pytest.mark.parametrize("target", FOREIGN_TARGETS)
def test_foreign_architecture_static(target, facts):
    got = facts(f"static_{target}")
    machine, elf_class, endianness = FOREIGN_TARGETS[target]
    assert (got["machine"], got["elf_class"], got["endianness"]) == (machine, elf_class, endianness)
    assert got["linkage"] == "static"
    assert got["swift_runtime"] == "none"
    assert re.fullmatch(r"[0-9a-f]{40}", got["build_id"])


@pytest.mark.parametrize(("target", "loader"), [("aarch64-linux-gnu", "/lib/ld-linux-aarch64.so.1"),
                                                ("s390x-linux-gnu", "/lib/ld64.so.1")])
def test_foreign_architecture_dynamic(target, loader, facts):
    got = facts(f"dynamic_{target}")
    assert got["interpreter"] == loader
    assert got["needed"] == ["libanswer.so.1"]
    assert got["rpath"] == ["$ORIGIN/../lib", "/opt/answer/lib"]
    assert got["runpath"] == []
    assert got["linkage"] == "dynamic"
    library = facts(f"lib_{target}")
    assert library["soname"] == "libanswer.so.1"
    assert library["machine"] == got["machine"] == FOREIGN_TARGETS[target][0]


@pytest.mark.parametrize(("content", "described"), [
    (b"#!/bin/sh\nexec server\n", "a script"),
    (b"Hello, this is a README.\n", "a text file"),
    (b"", "an empty file"),
    (b"\x1f\x8b\x08\x00" + bytes(60), "some other kind of file"),
])
def test_non_elf_file(content, described, tmp_path):
    path = tmp_path / "server"
    path.write_bytes(content)
    with pytest.raises(NotAnElfError) as raised:
        elf_facts(path)
    assert str(raised.value) == (f"{path} is not an ELF file (it is {described}); "
                                 "give the path of a compiled binary or shared library.")
    assert is_elf(path) is False


def test_fifo_is_rejected_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotAnElfError, match=r"device, pipe or socket"):
        elf_facts(fifo)
    assert is_elf(fifo) is False


def test_directory_is_not_elf(tmp_path):
    with pytest.raises(NotAnElfError, match=rf"^{re.escape(str(tmp_path))} is a directory"):
        elf_facts(tmp_path)
    assert is_elf(tmp_path) is False


def test_missing_file(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ElfFileNotFoundError, match=rf"^{re.escape(str(missing))} does not exist") as raised:
        elf_facts(missing)
    assert isinstance(raised.value, FileNotFoundError) and isinstance(raised.value, ElfError)
    assert is_elf(missing) is False


@pytest.mark.parametrize("keep", [4, 16, 64, 100, 4096, "half", "all but 100"])
def test_truncated_elf_gives_a_clear_error(keep, binaries, tmp_path):
    data = binaries["hello_static_stdlib"].read_bytes()
    size = {"half": len(data) // 2, "all but 100": len(data) - 100}.get(keep, keep)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(data[:size])
    assert is_elf(truncated) is True
    with pytest.raises(ElfError) as raised:
        elf_facts(truncated)
    assert not isinstance(raised.value, NotAnElfError)
    message = str(raised.value)
    assert message.startswith(f"{truncated} is not a readable ELF file: ")
    assert "truncated or corrupt" in message and "\n" not in message
    # Raised `from None`: the pyelftools exception is not chained into a traceback.
    assert raised.value.__suppress_context__ and raised.value.__cause__ is None


def test_is_elf_on_real_binaries(binaries):
    assert all(is_elf(binaries[name]) for name in ("hello_dynamic", "c_static_pie", "static_s390x-linux-gnu", "/bin/ls"))


def test_version_key_is_numeric():
    assert version_key("2.9") < version_key("2.34")
    assert version_key("3.4.3") < version_key("3.4.29")
    assert version_key("2.2.5") < version_key("2.3")
    assert sorted(["2.34", "2.9", "2.17", "2.2.5", "2.3.4"], key=version_key) == ["2.2.5", "2.3.4", "2.9", "2.17", "2.34"]
    assert max(["1.3.9", "1.3.11", "1.3"], key=version_key) == "1.3.11"
    # Non-numeric parts sort low instead of raising.
    assert version_key("PRIVATE") < version_key("0")


def test_a_library_reports_the_versions_it_defines():
    libc = elf_facts(_system_library("libc.so.6"))
    assert "GLIBC_2.2.5" in libc["version_definitions"] and "libc.so.6" not in libc["version_definitions"]
    glibc = subprocess.run(["getconf", "GNU_LIBC_VERSION"], capture_output=True, text=True, check=True).stdout
    assert libc["glibc_provided"] == glibc.split()[-1]
    libstdcxx = elf_facts(_system_library("libstdc++.so.6"))
    assert libstdcxx["glibcxx_provided"] and version_key(libstdcxx["glibcxx_provided"]) >= version_key("3.4.28")
    assert elf_facts("/bin/ls")["version_definitions"] == [] and elf_facts("/bin/ls")["glibc_provided"] is None


def _system_library(soname):
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    return next(line.split("=>")[1].strip() for line in cache.splitlines()
                if line.strip().startswith(soname + " ") and "x86-64" in line)


def test_build_id_is_the_gnu_note_not_a_systemtap_probe_of_the_same_type():
    # libstdc++ carries NT_STAPSDT notes (type 3, owner "stapsdt") before its NT_GNU_BUILD_ID (type 3, owner "GNU").
    library = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
    readelf = subprocess.run(["readelf", "-nW", library], capture_output=True, text=True, check=True).stdout
    assert "stapsdt" in readelf
    expected = re.search(r"Build ID: ([0-9a-f]+)", readelf).group(1)
    assert elf_facts(library)["build_id"] == expected
