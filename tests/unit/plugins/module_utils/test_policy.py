"""Unit tests for module_utils/_policy.py: the machine table and the link-mode classifier.

The machine table is checked against the tools that define each naming (clang's ELF output through elf_facts is
covered in test_elf.py; here the loader names, Debian's multiarch layout and this host's `uname -m`), and the
classifier against ELF facts of every shape _elf.elf_facts reports.
"""
from __future__ import annotations

import os
import platform
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from support import run_module

from ansible_collections.swiftlinux.deploy.plugins.filter.fit import _choose_artifact as _choose_filter
from ansible_collections.swiftlinux.deploy.plugins.filter.machine import machine
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import (
    GLIBC_FAMILY,
    GLIBC_LOADERS,
    LINK_MODES,
    MACHINES,
    canonical_machine,
    choose_artifact,
    host_fit,
    link_mode_of,
    link_mode_problem,
    machine_named,
    machine_of_elf,
    oci_platform,
)


def test_every_name_leads_to_one_machine():
    names = [m.name for m in MACHINES]
    assert len(names) == len(set(names))
    every = names + [alias for m in MACHINES for alias in m.aliases]
    assert len(every) == len(set(every)), "an alias names two machines"
    for machine in MACHINES:
        assert machine_named(machine.name) is machine
        assert all(machine_named(alias) is machine for alias in machine.aliases)
        assert machine_of_elf(machine.elf, machine.bits, machine.endian) is machine
        if machine.oci:
            assert machine_named(machine.oci) is machine and machine_named(oci_platform(machine.name)) is machine
        if machine.debian:
            assert machine_named(machine.debian) is machine


@pytest.mark.parametrize(("name", "canonical"), [
    # uname -m of 32-bit ARM and x86 kernels, the Docker engine's Architecture, OCI and Debian names.
    ("armv7l", "armv7l"), ("armv7", "armv7l"), ("armhf", "armv7l"), ("arm", "armv7l"), ("linux/arm/v7", "armv7l"),
    ("armv8l", "armv7l"), ("i686", "i686"), ("i386", "i686"), ("386", "i686"), ("linux/386", "i686"),
    ("amd64", "x86_64"), ("linux/amd64", "x86_64"), ("arm64", "aarch64"), ("ppc64el", "ppc64le"),
    ("loong64", "loongarch64"), ("mips64", "mips64"), (None, None),
])
def test_canonical_machine(name, canonical):
    assert canonical_machine(name) == canonical


def test_oci_platforms():
    assert [oci_platform(m) for m in ("x86_64", "aarch64", "armv7l", "i686", "ppc64le", "s390x", "riscv64")] == [
        "linux/amd64", "linux/arm64", "linux/arm/v7", "linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64"]
    assert oci_platform("ppc64") is None and oci_platform("mips64") is None


def test_this_host_is_in_the_table():
    """uname -m of the machine running the tests names a row whose loader and multiarch directory exist here."""
    machine = machine_named(platform.machine())
    assert machine is not None and machine.name == platform.machine()
    assert os.path.exists(machine.loader)
    assert os.path.isdir("/usr/lib/" + machine.multiarch)
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    assert machine_named(arch) is machine and machine.debian == arch
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    assert any("libc.so.6 (" in line and machine.ldconfig in line for line in listing.splitlines())


def test_loaders_are_glibc_family():
    assert {"ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "ld-linux-armhf.so.3", "ld-linux.so.2",
            "ld-linux-riscv64-lp64d.so.1", "ld64.so.2", "ld64.so.1"} <= GLIBC_LOADERS
    assert GLIBC_LOADERS <= GLIBC_FAMILY and "libc.so.6" in GLIBC_FAMILY


def facts(**overrides):
    """ELF facts shaped like elf_facts' result, for a dynamic Swift program unless overridden."""
    base = dict(linkage="dynamic", elf_type="DYN", interpreter="/lib64/ld-linux-x86-64.so.2",
                needed=["libswiftCore.so", "libc.so.6"], swift_runtime="dynamic")
    base.update(overrides)
    return base


STATIC = dict(linkage="static", elf_type="EXEC", interpreter=None, needed=[], swift_runtime="static")
STATIC_PIE = dict(STATIC, linkage="static-pie", elf_type="DYN")
STATIC_STDLIB = dict(needed=["libstdc++.so.6", "libm.so.6", "libc.so.6"], swift_runtime="static")
C_PROGRAM = dict(needed=["libc.so.6"], swift_runtime="none")
# A shared library with no dependencies (ld.so itself): no loader, nothing needed, but not an executable.
DEPENDENCY_FREE_LIBRARY = dict(linkage="dynamic", elf_type="DYN", interpreter=None, needed=[], swift_runtime="none")


@pytest.mark.parametrize(("shape", "mode"), [
    (STATIC, "static_executable"), (STATIC_PIE, "static_executable"),
    (dict(STATIC, swift_runtime="none"), "static_executable"),
    (STATIC_STDLIB, "static_stdlib"), ({}, "dynamic"), (C_PROGRAM, "dynamic"),
    (DEPENDENCY_FREE_LIBRARY, "dynamic"),
])
def test_link_mode_of(shape, mode):
    assert link_mode_of(facts(**shape)) == mode


@pytest.mark.parametrize(("shape", "ok"), [
    (STATIC, {"static_executable", "static_stdlib"}),
    (STATIC_STDLIB, {"static_stdlib"}),
    ({}, {"dynamic"}),
    (C_PROGRAM, set()),
    (DEPENDENCY_FREE_LIBRARY, set()),
    (dict(STATIC_STDLIB, needed=["libicuuc.so.72", "libc.so.6"]), set()),
])
def test_link_mode_problem_agrees_with_link_mode_of(shape, ok):
    """A build passes its own mode's check exactly when the classifier names that mode (a fully static build
    also meets static_stdlib's rules); every refusal is a sentence fragment without a line break."""
    given = facts(**shape)
    assert not ok or link_mode_of(given) in ok
    for mode in LINK_MODES:
        problem = link_mode_problem(mode, given)
        assert (problem is None) == (mode in ok), (mode, problem)
        assert problem is None or ("\n" not in problem and problem[0].islower())
    assert "shared library" in (link_mode_problem("static_executable", facts(**DEPENDENCY_FREE_LIBRARY)) or "")


def test_unknown_link_mode_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown link mode"):
        link_mode_problem("static", facts())


def test_machine_filter_gives_each_tool_its_name():
    assert machine("armhf") == "armv7l" and machine("linux/386") == "i686" and machine("mips64") == "mips64"
    assert [machine("amd64", field) for field in ("oci", "oci_platform", "debian", "multiarch", "loader",
                                                  "ldconfig")] == [
        "amd64", "linux/amd64", "amd64", "x86_64-linux-gnu", "/lib64/ld-linux-x86-64.so.2", "x86-64"]
    assert machine("i686", "ldconfig") is None and machine("mips64", "debian") is None
    with pytest.raises(AnsibleFilterError, match="not one of"):
        machine("x86_64", "uname")


def test_machine_filter_in_a_play():
    """Through ansible's own collection loader, as the roles use it."""
    result = run_module("ansible.builtin.debug", {
        "msg": "{{ ['arm64', 'linux/arm/v7', 'i386'] | map('swiftlinux.deploy.machine') | list }}"
               " {{ 'armv7l' | swiftlinux.deploy.machine('oci_platform') }}"})
    assert not result.get("failed"), result
    assert result["msg"] == "['aarch64', 'armv7l', 'i686'] linux/arm/v7"


# ---- host_fit and choose_artifact: the one rule for "can this host run that artifact" ----------------------------

BOOKWORM = dict(architecture="x86_64", glibc_version="2.36", glibcxx_version="3.4.30",
                libraries={"libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6",
                           "libstdc++.so.6": "/lib/x86_64-linux-gnu/libstdc++.so.6",
                           "libgcc_s.so.1": "/lib/x86_64-linux-gnu/libgcc_s.so.1"})
BULLSEYE = dict(BOOKWORM, glibc_version="2.31", glibcxx_version="3.4.28")


def artifact(name, size, **facts):
    base = dict(name=name, size=size, kind="executable", link_mode=name, scope=None, architecture="x86_64",
                glibc_required=None, glibcxx_required=None, system_libraries=[])
    base.update(facts)
    return base


STATIC = artifact("static_executable", 9_000_000)
STDLIB = artifact("static_stdlib", 4_000_000, glibc_required="2.35", glibcxx_required="3.4.29",
                  system_libraries=["libc.so.6", "libstdc++.so.6", "libgcc_s.so.1"])
BAG_ALL = artifact("bag-all", 60_000_000, kind="bag", link_mode="dynamic", scope="all")
NETWORKING = artifact("networking", 5_000_000, glibc_required="2.34",
                      system_libraries=["libc.so.6", "libcurl.so.4", "libxml2.so.2", "libfoo.so.9"])


def test_host_fit_names_every_problem_in_the_roles_words():
    fit = host_fit(BULLSEYE, STDLIB)
    assert not fit["ok"]
    assert fit["problems"] == ["glibc 2.31 is older than the required 2.35",
                               "libstdc++ provides GLIBCXX_3.4.28 but GLIBCXX_3.4.29 is required"]
    assert host_fit(BOOKWORM, STDLIB) == dict(ok=True, problems=[], missing=[], packages=[], unknown=[])
    assert host_fit(dict(BOOKWORM, architecture="aarch64"), STATIC)["problems"] == [
        "architecture aarch64 cannot run an x86_64 binary"]
    assert host_fit(dict(BOOKWORM, architecture="amd64"), STATIC)["ok"]  # one machine, two names
    assert host_fit(dict(BOOKWORM, glibc_version=None), STDLIB)["problems"] == [
        "the C library is not glibc, and glibc 2.35 is required"]


def test_host_fit_sorts_missing_libraries_into_packages_and_unknown():
    fit = host_fit(BOOKWORM, NETWORKING)
    assert fit["missing"] == ["libcurl.so.4", "libxml2.so.2", "libfoo.so.9"]
    assert fit["packages"] == ["libcurl4", "libxml2"]
    assert fit["unknown"] == ["libfoo.so.9"]
    assert not fit["ok"]
    known = dict(NETWORKING, system_libraries=["libc.so.6", "libcurl.so.4"])
    assert host_fit(BOOKWORM, known)["ok"]
    assert not host_fit(BOOKWORM, known, install_packages=False)["ok"]


def test_choose_takes_the_preferred_when_it_fits():
    choice = choose_artifact([STATIC, STDLIB, BAG_ALL], BOOKWORM, "bookworm-1", preferred="static_stdlib")
    assert choice["chosen"] is STDLIB
    assert choice["summary"] == "bookworm-1: takes static_stdlib as asked"
    assert [v["name"] for v in choice["verdicts"]] == ["static_stdlib", "static_executable", "bag-all"]  # by size


def test_choose_falls_back_to_the_smallest_that_fits_and_says_why():
    choice = choose_artifact([BAG_ALL, STDLIB, STATIC], BULLSEYE, "bullseye-1", preferred="static_stdlib")
    assert choice["chosen"] is STATIC
    assert choice["summary"] == ("bullseye-1: static_stdlib cannot run there (glibc 2.31 is older than the required "
                                 "2.35; libstdc++ provides GLIBCXX_3.4.28 but GLIBCXX_3.4.29 is required) -> takes "
                                 "static_executable instead")
    choice = choose_artifact([BAG_ALL, STDLIB], BULLSEYE, "bullseye-1", preferred="static_stdlib")
    assert choice["summary"].endswith("-> takes the scope-all bag instead")
    assert choose_artifact([BAG_ALL, STDLIB, STATIC], BULLSEYE, "b")["summary"] == (
        "b: takes static_executable, the smallest that runs there")


def test_choose_refuses_when_asked_to_and_when_nothing_fits():
    choice = choose_artifact([STDLIB, STATIC], BULLSEYE, "bullseye-1", preferred="static_stdlib", fallback="refuse")
    assert choice["chosen"] is None
    assert "-> refused, as ship_fallback is refuse" in choice["summary"]
    nothing = choose_artifact([STDLIB], BULLSEYE, "bullseye-1")
    assert nothing["chosen"] is None
    assert nothing["summary"].startswith("bullseye-1: nothing built can run there (static_stdlib: glibc 2.31")


def test_choose_says_which_packages_it_will_install():
    curl = dict(NETWORKING, name="networking", system_libraries=["libc.so.6", "libcurl.so.4"])
    assert choose_artifact([curl], BOOKWORM, "h")["summary"] == (
        "h: takes networking, the smallest that runs there (installs libcurl4)")
    assert choose_artifact([curl], BOOKWORM, "h", install_packages=False)["chosen"] is None


def test_choose_rejects_an_unknown_preference_and_fallback():
    with pytest.raises(ValueError, match="the preferred artifact 'dynamic' is not among the built ones"):
        choose_artifact([STATIC], BOOKWORM, "h", preferred="dynamic")
    with pytest.raises(ValueError, match="fallback must be smallest or refuse"):
        choose_artifact([STATIC], BOOKWORM, "h", fallback="largest")
    with pytest.raises(AnsibleFilterError, match="not among the built ones"):
        _choose_filter([STATIC], BOOKWORM, "h", "dynamic")


def test_a_launcher_needs_a_shell_where_the_host_says_it_has_none():
    bag = dict(BAG_ALL, needs_shell=True)
    scratch = dict(BOOKWORM, glibc_version=None, glibcxx_version=None, libraries={}, shell=False)
    assert host_fit(scratch, bag)["problems"] == ["its launcher is a shell script and the host has no /bin/sh"]
    assert host_fit(dict(BOOKWORM, shell=True), bag)["ok"]
    assert host_fit(BOOKWORM, bag)["ok"]  # facts from before host_info read the shell: not a refusal
