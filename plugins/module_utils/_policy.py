# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Policy kept as data: the machines this collection knows, the link modes, and which libraries each mode may
still need at run time.

Library names are SONAMEs as they appear in DT_NEEDED. Like auditwheel's manylinux policy, the
decisions live here and the code that applies them stays generic.
"""

from __future__ import annotations

from collections import namedtuple

# One row per machine; every other naming of a machine in this collection is looked up here.
#   name       what `uname -m` prints on a kernel of that architecture, and what Docker's engine reports as its
#              Architecture; the collection's own name for the machine (elf_facts' `machine`).
#   elf        pyelftools' e_machine constant, with the word size and byte order that tell variants apart.
#   oci        the OCI/Docker platform architecture (and variant), None where no image platform exists.
#   debian     the Debian architecture (dpkg --print-architecture, package names like libc6:amd64).
#   multiarch  Debian's multiarch triplet, the library directory /usr/lib/<multiarch> its loader searches.
#   loader     glibc's dynamic loader (PT_INTERP) for that machine.
#   ldconfig   the tag `ldconfig -p` prints for its native libraries, None where it prints none.
#   aliases    other spellings seen for the same machine: `uname -m` of related kernels, OCI and Debian names.
Machine = namedtuple("Machine", "name elf bits endian oci oci_variant debian multiarch loader ldconfig aliases")

MACHINES = (
    Machine("x86_64", "EM_X86_64", 64, "little", "amd64", None, "amd64", "x86_64-linux-gnu",
            "/lib64/ld-linux-x86-64.so.2", "x86-64", ("amd64", "x86-64")),
    Machine("aarch64", "EM_AARCH64", 64, "little", "arm64", None, "arm64", "aarch64-linux-gnu",
            "/lib/ld-linux-aarch64.so.1", "AArch64", ("arm64", "armv8", "arm64/v8")),
    # EM_ARM covers every 32-bit ARM; Debian's and Docker's 32-bit ARM with a glibc loader is armhf, ARMv7.
    # A 32-bit ARM process on an arm64 kernel sees armv8l.
    Machine("armv7l", "EM_ARM", 32, "little", "arm", "v7", "armhf", "arm-linux-gnueabihf",
            "/lib/ld-linux-armhf.so.3", "hard-float", ("armv7", "armhf", "arm", "arm/v7", "armv8l")),
    # Linux has not run on an i386 CPU since 3.8; a 32-bit x86 kernel (or linux32 on x86_64) prints i686.
    Machine("i686", "EM_386", 32, "little", "386", None, "i386", "i386-linux-gnu",
            "/lib/ld-linux.so.2", None, ("i386", "i486", "i586", "386", "x86")),
    Machine("riscv64", "EM_RISCV", 64, "little", "riscv64", None, "riscv64", "riscv64-linux-gnu",
            "/lib/ld-linux-riscv64-lp64d.so.1", "double-float", ()),
    Machine("ppc64le", "EM_PPC64", 64, "little", "ppc64le", None, "ppc64el", "powerpc64le-linux-gnu",
            "/lib64/ld64.so.2", "64bit", ("ppc64el", "powerpc64le")),
    Machine("s390x", "EM_S390", 64, "big", "s390x", None, "s390x", "s390x-linux-gnu",
            "/lib/ld64.so.1", "64bit", ()),
    Machine("loongarch64", "EM_LOONGARCH", 64, "little", "loong64", None, "loong64", "loongarch64-linux-gnu",
            "/lib64/ld-linux-loongarch-lp64d.so.1", None, ("loong64",)),
    # Big-endian and 32-bit variants ELF files can be built for, but which have no Debian release or OCI image here.
    Machine("ppc64", "EM_PPC64", 64, "big", None, None, None, None, None, None, ()),
    Machine("riscv32", "EM_RISCV", 32, "little", None, None, None, None, None, None, ()),
    Machine("s390", "EM_S390", 32, "big", None, None, None, None, None, None, ()),
)

_BY_ELF = {(m.elf, m.bits, m.endian): m for m in MACHINES}
# Exact names first, so an alias never shadows another machine's own name.
_BY_NAME = dict([(alias, m) for m in MACHINES for alias in m.aliases] + [(m.name, m) for m in MACHINES])


def machine_of_elf(e_machine, bits, endian):
    """The Machine row for an ELF header's e_machine (pyelftools' EM_* name), word size and byte order, or None."""
    return _BY_ELF.get((str(e_machine), bits, endian))


def machine_named(name):
    """The Machine row for any name of it (uname -m, OCI architecture or platform, Debian architecture), or None."""
    if name is None:
        return None
    name = str(name)
    if name.startswith("linux/"):
        name = name[len("linux/"):]
    return _BY_NAME.get(name)


def canonical_machine(name):
    """The collection's name (as `uname -m` prints it) for any name of a machine; unknown names come back unchanged."""
    row = machine_named(name)
    return row.name if row else name


def oci_platform(machine):
    """The OCI platform string (linux/amd64, linux/arm/v7) for any name of a machine; None when it has none."""
    row = machine_named(machine)
    if row is None or row.oci is None:
        return None
    return "linux/" + row.oci + ("/" + row.oci_variant if row.oci_variant else "")


LINK_MODES = ("static_executable", "static_stdlib", "dynamic")

# swift build flags per link mode on glibc. With a Static Linux SDK (musl) every build is fully
# static and the SDK flag replaces these.
LINK_MODE_FLAGS = {
    "static_executable": ("--static-swift-stdlib", "-Xswiftc", "-static-executable"),
    "static_stdlib": ("--static-swift-stdlib",),
    "dynamic": (),
}

# glibc's dynamic loaders, by file name (how DT_NEEDED and a bag name them).
GLIBC_LOADERS = frozenset(m.loader.rsplit("/", 1)[-1] for m in MACHINES if m.loader)

# The glibc family: provided by every glibc host, never bundled except in a scope-`all` bag.
GLIBC_FAMILY = frozenset((
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libresolv.so.2", "libanl.so.1",
)) | GLIBC_LOADERS

# The C++ runtime the Swift runtime needs, installed on nearly every host (libstdc++6, libgcc-s1).
CXX_RUNTIME = frozenset(("libstdc++.so.6", "libgcc_s.so.1"))

# What Foundation's optional modules pull in: FoundationNetworking -> libcurl, FoundationXML -> libxml2.
FOUNDATION_SYSTEM_LIBS = frozenset(("libcurl.so.4", "libxml2.so.2"))

# static_stdlib may leave exactly these NEEDED.
STATIC_STDLIB_ALLOWED = GLIBC_FAMILY | CXX_RUNTIME | FOUNDATION_SYSTEM_LIBS

# The Debian package that provides each system library a static_stdlib binary may need.
# apt resolves the t64 renames on trixie (libcurl4 -> libcurl4t64) by itself.
DEBIAN_PACKAGE_FOR = {
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
    "libcurl.so.4": "libcurl4",
    "libxml2.so.2": "libxml2",
    "libz.so.1": "zlib1g",
}

SWIFT_CORE = "libswiftCore.so"


def version_key(version):
    """Sort key comparing dotted versions numerically, so "2.9" < "2.34".

    Non-numeric parts (as in "GLIBC_PRIVATE") sort before any number rather than raising.
    """
    return tuple(int(part) if part.isdigit() else -1 for part in str(version).split("."))


def link_mode_of(facts):
    """The link mode ELF `facts` (from _elf.elf_facts) show: the one place that decides it.

    static_executable: no loader and no shared libraries (static or static-pie). static_stdlib: the Swift runtime is
    linked in, glibc is loaded. dynamic: everything else, including programs without Swift code.
    """
    if facts["linkage"] in ("static", "static-pie") and not facts["needed"] and not facts.get("interpreter"):
        return "static_executable"
    if facts["swift_runtime"] == "static":
        return "static_stdlib"
    return "dynamic"


def link_mode_problem(mode, facts):
    """Return a sentence saying why ELF `facts` are not a `mode` build, or None when they are."""
    if mode not in LINK_MODES:
        raise ValueError("unknown link mode %r" % mode)
    needed = facts["needed"]
    if mode == "static_executable":
        if link_mode_of(facts) == "static_executable":
            return None
        if facts["interpreter"] or needed:
            return ("is not fully static: it has interpreter %s and needs %s"
                    % (facts["interpreter"] or "none", ", ".join(needed) or "nothing"))
        return ("is not a static executable: it is a %s %s file (a shared library)"
                % (facts["linkage"], facts["elf_type"]))
    if mode == "static_stdlib":
        extra = [lib for lib in needed if lib not in STATIC_STDLIB_ALLOWED]
        if extra:
            return ("still needs %s, which a static_stdlib build must not (only glibc, libstdc++, "
                    "libgcc_s, libcurl and libxml2 may stay dynamic)" % ", ".join(extra))
        if facts["swift_runtime"] != "static":
            return "does not embed the Swift runtime"
        return None
    if SWIFT_CORE not in needed:
        return "does not need %s, so the Swift runtime is not linked dynamically" % SWIFT_CORE
    return None


def host_fit(host, artifact, install_packages=True):
    """What stands between a host (host_info's `host`) and running an artifact (artifact_info's answer).

    Returns problems (sentences about the machine, glibc and libstdc++ that no package install fixes), the system
    libraries the host lacks, the Debian packages that provide them, the ones no known package provides, and
    `ok`: whether the artifact can run there once those packages are installed (and installing is allowed).
    """
    problems = []
    if canonical_machine(host["architecture"]) != canonical_machine(artifact["architecture"]):
        problems.append("architecture %s cannot run an %s binary" % (host["architecture"], artifact["architecture"]))
    need = artifact.get("glibc_required")
    if need and not host.get("glibc_version"):
        problems.append("the C library is not glibc, and glibc %s is required" % need)
    elif need and version_key(host["glibc_version"]) < version_key(need):
        problems.append("glibc %s is older than the required %s" % (host["glibc_version"], need))
    need = artifact.get("glibcxx_required")
    if need and host.get("glibcxx_version") and version_key(host["glibcxx_version"]) < version_key(need):
        problems.append("libstdc++ provides GLIBCXX_%s but GLIBCXX_%s is required" % (host["glibcxx_version"], need))
    if artifact.get("needs_shell") and host.get("shell") is False:
        problems.append("its launcher is a shell script and the host has no /bin/sh")
    missing = [lib for lib in artifact.get("system_libraries") or [] if lib not in host.get("libraries", {})]
    unknown = [lib for lib in missing if lib not in DEBIAN_PACKAGE_FOR]
    packages = sorted(set(DEBIAN_PACKAGE_FOR[lib] for lib in missing if lib in DEBIAN_PACKAGE_FOR))
    return dict(ok=not problems and not unknown and (install_packages or not missing), problems=problems,
                missing=missing, packages=packages, unknown=unknown)


def artifact_label(artifact):
    """How a summary names an artifact: its link mode, or 'the scope-<scope> bag'."""
    if artifact.get("kind") == "bag":
        return "the scope-%s bag" % artifact.get("scope")
    return artifact.get("link_mode") or "the artifact"


def _why_not(fit, install_packages):
    reasons = list(fit["problems"])
    if fit["unknown"]:
        reasons.append("it needs %s, which no known Debian package provides" % ", ".join(fit["unknown"]))
    elif fit["missing"] and not install_packages:
        reasons.append("it needs %s (install %s) and installing packages is off"
                       % (", ".join(fit["missing"]), ", ".join(fit["packages"])))
    return "; ".join(reasons)


def choose_artifact(candidates, host, host_name, preferred=None, fallback="smallest", install_packages=True):
    """Pick what a host takes from described candidates (artifact_info answers, each with `name` and `size`).

    The `preferred` candidate (by name) when it fits; otherwise, with fallback 'smallest', the smallest one that
    fits, and with 'refuse', none. Returns chosen (the candidate or None), one summary line for the play, and every
    candidate's verdict.
    """
    if fallback not in ("smallest", "refuse"):
        raise ValueError("fallback must be smallest or refuse, not %r" % (fallback,))
    names = [c["name"] for c in candidates]
    if preferred and preferred not in names:
        raise ValueError("%s: the preferred artifact %r is not among the built ones (%s)"
                         % (host_name, preferred, ", ".join(names) or "none"))
    verdicts = []
    for candidate in sorted(candidates, key=lambda c: (c["size"], c["name"])):
        fit = host_fit(host, candidate, install_packages)
        verdicts.append(dict(name=candidate["name"], label=artifact_label(candidate), size=candidate["size"],
                             ok=fit["ok"], why_not=None if fit["ok"] else _why_not(fit, install_packages),
                             packages=fit["packages"] if fit["ok"] else []))
    by_name = dict((v["name"], v) for v in verdicts)
    fitting = [v for v in verdicts if v["ok"]]
    first = by_name.get(preferred) if preferred else None
    if first and first["ok"]:
        chosen, summary = first, "%s: takes %s as asked" % (host_name, first["label"])
    elif first and fallback == "refuse":
        chosen, summary = None, "%s: %s cannot run there (%s) -> refused, as ship_fallback is refuse" % (
            host_name, first["label"], first["why_not"])
    elif fitting:
        chosen = fitting[0]
        if first:
            summary = "%s: %s cannot run there (%s) -> takes %s instead" % (
                host_name, first["label"], first["why_not"], chosen["label"])
        else:
            summary = "%s: takes %s, the smallest that runs there" % (host_name, chosen["label"])
    else:
        chosen, summary = None, "%s: nothing built can run there (%s)" % (
            host_name, "; ".join("%s: %s" % (v["label"], v["why_not"]) for v in verdicts) or "no artifacts")
    if chosen and chosen["packages"]:
        summary += " (installs %s)" % ", ".join(chosen["packages"])
    picked = [c for c in candidates if chosen and c["name"] == chosen["name"]]
    return dict(chosen=picked[0] if picked else None, summary=summary, verdicts=verdicts)
