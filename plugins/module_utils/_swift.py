# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Swift toolchain as the modules see it: where it is, what it can target, what a package holds.

Every function takes `run`, a callable shaped like AnsibleModule.run_command, so the module decides
how commands run and this file stays free of Ansible state.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

# Where toolchains are usually unpacked when `swift` is not on PATH.
TOOLCHAIN_DIRS = ("/opt/swift/usr/bin", "/usr/share/swift/usr/bin", "/usr/local/swift/usr/bin")

# Sources, manifests and resources; build output and editor state never change what gets built.
_SKIP_DIRS = frozenset((".build", ".swiftpm", ".git", ".index-build"))


class SwiftError(Exception):
    """A problem with the toolchain or the package, phrased for the person running the play."""


def toolchain_dirs():
    """Directories to search for `swift` besides PATH, the override from the environment first."""
    override = os.environ.get("SWIFT_TOOLCHAIN_BIN")
    return ((override,) if override else ()) + TOOLCHAIN_DIRS


def swift_version(run, swift):
    """The toolchain's version, e.g. '6.3.1'."""
    rc, out, err = run([swift, "--version"])
    match = re.search(r"Swift version (\d+\.\d+(?:\.\d+)?)", out + err)
    if rc != 0 or not match:
        raise SwiftError("%s --version did not report a Swift version: %s" % (swift, (err or out).strip()))
    return match.group(1)


def installed_sdks(run, swift):
    """The Swift SDK ids `swift sdk list` reports (the Static Linux SDK among them, when installed)."""
    rc, out, err = run([swift, "sdk", "list"])
    if rc != 0:
        raise SwiftError("swift sdk list failed: %s" % (err or out).strip())
    return [line.strip() for line in out.splitlines()
            if line.strip() and not line.startswith("No Swift SDKs")]


def describe_package(run, swift, package_path):
    """`swift package describe` as a dict, with compiler/manifest errors turned into one message."""
    rc, out, err = run([swift, "package", "--package-path", package_path, "describe", "--type", "json"])
    if rc != 0:
        raise SwiftError("swift package describe failed for %s:\n%s"
                         % (package_path, "\n".join(error_lines(out + "\n" + err)) or err.strip()))
    # Warnings may precede the JSON document on stdout.
    return json.loads(out[out.index("{"):])


def package_paths(run, swift, package_path):
    """The root package and every package it depends on, as local directories."""
    rc, out, err = run([swift, "package", "--package-path", package_path, "show-dependencies", "--format", "json"])
    if rc != 0:
        raise SwiftError("swift package show-dependencies failed for %s: %s" % (package_path, (err or out).strip()))
    paths = []

    def walk(node):
        if node.get("path") and node["path"] not in paths:
            paths.append(node["path"])
        for child in node.get("dependencies", ()):
            walk(child)

    walk(json.loads(out[out.index("{"):]))
    return paths


def executable_products(description):
    """Names of the package's executable products, in manifest order."""
    return [p["name"] for p in description.get("products", ()) if "executable" in p.get("type", {})]


def resource_bundles(description, product):
    """Bundle directory names SwiftPM writes next to the binaries for `product`'s own targets."""
    package = description["name"]
    return ["%s_%s.resources" % (package, t["name"]) for t in description.get("targets", ())
            if t.get("resources") and product in t.get("product_memberships", ())]


def source_fingerprint(paths, skip=()):
    """sha256 over the relative path, mode and content of every file in the given package trees."""
    digest = hashlib.sha256()
    skip = {os.path.realpath(s) for s in skip}
    for root_path in paths:
        for current, dirs, files in os.walk(root_path):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS
                             and os.path.realpath(os.path.join(current, d)) not in skip)
            for name in sorted(files):
                full = os.path.join(current, name)
                digest.update(os.path.relpath(full, root_path).encode() + b"\0")
                if os.path.islink(full):
                    digest.update(b"link:" + os.readlink(full).encode())
                    continue
                with open(full, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
    return digest.hexdigest()


def error_lines(output, limit=20):
    """The compiler's and linker's error lines, without the surrounding wall of output."""
    lines = [line.rstrip() for line in output.splitlines() if re.search(r"\berror\b:", line)]
    seen = []
    for line in lines:
        if line not in seen:
            seen.append(line)
    return seen[:limit]
