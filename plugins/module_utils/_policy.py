# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Link-mode policy kept as data: which libraries each mode may still need at run time.

The names are SONAMEs as they appear in DT_NEEDED. Like auditwheel's manylinux policy, the
decisions live here and the code that applies them stays generic.
"""

from __future__ import annotations

LINK_MODES = ("static_executable", "static_stdlib", "dynamic")

# swift build flags per link mode on glibc. With a Static Linux SDK (musl) every build is fully
# static and the SDK flag replaces these.
LINK_MODE_FLAGS = {
    "static_executable": ("--static-swift-stdlib", "-Xswiftc", "-static-executable"),
    "static_stdlib": ("--static-swift-stdlib",),
    "dynamic": (),
}

# The glibc family: provided by every glibc host, never bundled except in a scope-`all` bag.
GLIBC_FAMILY = frozenset((
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libresolv.so.2", "libanl.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
    "ld-linux-armhf.so.3", "ld-linux-riscv64-lp64d.so.1", "ld64.so.2", "ld-linux.so.2",
))

# The C++ runtime the Swift runtime needs, installed on nearly every host (libstdc++6, libgcc-s1).
CXX_RUNTIME = frozenset(("libstdc++.so.6", "libgcc_s.so.1"))

# What Foundation's optional modules pull in: FoundationNetworking -> libcurl, FoundationXML -> libxml2.
FOUNDATION_SYSTEM_LIBS = frozenset(("libcurl.so.4", "libxml2.so.2"))

# static_stdlib may leave exactly these NEEDED.
STATIC_STDLIB_ALLOWED = GLIBC_FAMILY | CXX_RUNTIME | FOUNDATION_SYSTEM_LIBS

# The Debian package that provides each system library a static_stdlib binary may need.
DEBIAN_PACKAGE_FOR = {
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
    "libcurl.so.4": "libcurl4",
    "libxml2.so.2": "libxml2",
}

SWIFT_CORE = "libswiftCore.so"


def link_mode_problem(mode, facts):
    """Return a sentence saying why ELF `facts` are not a `mode` build, or None when they are."""
    needed = facts["needed"]
    if mode == "static_executable":
        if facts["interpreter"] or needed:
            return ("is not fully static: it has interpreter %s and needs %s"
                    % (facts["interpreter"] or "none", ", ".join(needed) or "nothing"))
        return None
    if mode == "static_stdlib":
        extra = [lib for lib in needed if lib not in STATIC_STDLIB_ALLOWED]
        if extra:
            return ("still needs %s, which a static_stdlib build must not (only glibc, libstdc++, "
                    "libgcc_s, libcurl and libxml2 may stay dynamic)" % ", ".join(extra))
        if facts["swift_runtime"] != "static":
            return "does not embed the Swift runtime"
        return None
    if mode == "dynamic":
        if SWIFT_CORE not in needed:
            return "does not need %s, so the Swift runtime is not linked dynamically" % SWIFT_CORE
        return None
    raise ValueError("unknown link mode %r" % mode)
