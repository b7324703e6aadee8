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
import shutil

from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import sha256_file

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


def describe_package(run, swift, package_path, spm_options=()):
    """`swift package describe` as a dict, with compiler/manifest errors turned into one message.

    `spm_options` (scratch, config and cache paths) must match the resolution's, so nothing is fetched again.
    """
    rc, out, err = run([swift, "package", "--package-path", package_path] + list(spm_options)
                       + ["describe", "--type", "json"])
    if rc != 0:
        raise SwiftError("swift package describe failed for %s:\n%s"
                         % (package_path, "\n".join(error_lines(out + "\n" + err)) or err.strip()))
    # Warnings may precede the JSON document on stdout.
    return json.loads(out[out.index("{"):])


def package_paths(run, swift, package_path, spm_options=()):
    """The root package and every package it depends on, as local directories."""
    rc, out, err = run([swift, "package", "--package-path", package_path] + list(spm_options)
                       + ["show-dependencies", "--format", "json"])
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


def resolve_dependencies(run, swift, package_path, spm_options=(), pinned=False, mirrors=None):
    """Fetch and check out the package's dependencies once, into the scratch path in `spm_options`.

    `pinned` takes versions only from Package.resolved. A dependency that cannot be fetched becomes one
    sentence naming its URL as the manifest gives it (`mirrors` maps mirror locations back to it).
    """
    cmd = [swift, "package", "--package-path", package_path] + list(spm_options) + ["resolve"]
    if pinned:
        cmd.append("--force-resolved-versions")
    rc, out, err = run(cmd)
    if rc == 0:
        return
    output = out + "\n" + err
    url = _unfetched_url(output)
    if url:
        originals = {mirror: original for original, mirror in (mirrors or {}).items()}
        url = originals.get(url, originals.get(url.replace("file://", "", 1), url))
        raise SwiftError("dependency %s could not be fetched (%s); add a mirror with the mirrors option or vendor it"
                         % (url, _fetch_failure_reason(output)))
    if "resolved file is required" in output or "out of date" in output or "not in the resolved file" in output:
        raise SwiftError("force_resolved_versions needs a Package.resolved in %s that pins every dependency; "
                         "resolve once without it and commit Package.resolved" % package_path)
    lines = error_lines(output) or output.strip().splitlines()[-3:]
    raise SwiftError("swift package resolve failed for %s: %s" % (package_path, " ".join(lines)))


def _unfetched_url(output):
    """The URL SwiftPM failed to clone, or the last one it began fetching without finishing."""
    failed = re.search(r"(?:Failed to clone repository|cannot clone from local directory) (\S+?):?\s*$",
                       output, re.MULTILINE)
    if failed:
        return failed.group(1)
    fetched = set(re.findall(r"^Fetched (\S+)", output, re.MULTILINE))
    pending = [u for u in re.findall(r"^Fetching (\S+)\s*$", output, re.MULTILINE) if u not in fetched]
    return pending[-1] if pending else None


def _fetch_failure_reason(output):
    """git's own last word, shortened: 'Could not resolve host: x', "repository '/x' does not exist"."""
    fatal = re.findall(r"fatal: (.+)$", output, re.MULTILINE)
    if not fatal:
        line = (error_lines(output) or ["no reason given"])[0]
        return re.sub(r"^.*?error: (?:'[^']*': )?", "", line).strip()
    reason = fatal[-1].strip()
    access = re.match(r"unable to access '[^']*': (.+)", reason)
    return access.group(1) if access else reason


def resolved_dependencies(package_path):
    """The pins of Package.resolved (versions 1 to 3): identity, URL as the manifest gives it, version, revision."""
    try:
        with open(os.path.join(package_path, "Package.resolved")) as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return []
    pins = document.get("pins") if isinstance(document, dict) else None
    if pins is None and isinstance(document, dict) and isinstance(document.get("object"), dict):
        pins = document["object"].get("pins")  # version 1 files
    found = []
    for pin in pins if isinstance(pins, list) else ():
        if not isinstance(pin, dict) or not isinstance(pin.get("state"), dict):
            continue
        url = pin.get("location") or pin.get("repositoryURL") or ""
        identity = pin.get("identity") or pin.get("package") or os.path.basename(url).rsplit(".git", 1)[0]
        found.append({"identity": str(identity).lower(), "url": str(url),
                      "version": pin["state"].get("version"), "revision": pin["state"].get("revision"),
                      "branch": pin["state"].get("branch")})
    return sorted(found, key=lambda pin: pin["identity"])


def share_dependencies(resolved_dir, scratch):
    """Let a build's scratch directory use the checkouts resolved once into `resolved_dir`.

    SwiftPM keeps clones in `repositories/` and working copies in `checkouts/` of its scratch path; links
    to the shared ones plus a copy of the workspace state mean a build finds every dependency at the pinned
    revision and fetches nothing. Each link mode still compiles in its own scratch directory.
    """
    os.makedirs(scratch, exist_ok=True)
    for name in ("repositories", "checkouts"):
        link, target = os.path.join(scratch, name), os.path.join(resolved_dir, name)
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        if os.path.islink(link) or os.path.isfile(link):
            os.unlink(link)
        elif os.path.isdir(link):
            shutil.rmtree(link)  # a private copy from an older build in this scratch directory
        os.makedirs(target, exist_ok=True)
        os.symlink(target, link)
    state = os.path.join(resolved_dir, "workspace-state.json")
    if os.path.isfile(state):
        shutil.copyfile(state, os.path.join(scratch, "workspace-state.json"))


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
                digest.update(sha256_file(full).encode())
    return digest.hexdigest()


def error_lines(output, limit=20):
    """The compiler's and linker's error lines, without the surrounding wall of output."""
    lines = [line.rstrip() for line in output.splitlines() if re.search(r"\berror\b:", line)]
    seen = []
    for line in lines:
        if line not in seen:
            seen.append(line)
    return seen[:limit]
