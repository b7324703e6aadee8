#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: swift_build
short_description: Build a Swift package's executables in a chosen link mode and collect them
version_added: 0.1.0
description:
  - Runs C(swift build) for one link mode, copies each executable product to O(dest), strips it while
    keeping its debug info in C(<exe>.debug) linked through C(.gnu_debuglink), and copies the SwiftPM
    resource bundles and, for static modes, C(swift-backtrace-static) beside it.
  - Checks after the build that each executable really is the requested link mode, by reading its ELF
    headers, and fails loudly when it is not.
  - Skips the build when the sources of the package and of its local dependencies, the options and the
    toolchain are unchanged since the last build into O(dest). That check reads the package folders the last
    build recorded and C(Package.resolved) without running SwiftPM, so an unchanged build is quick; any
    difference (a changed C(Package.swift) among them) takes the full path through SwiftPM.
  - Resolves the package's dependencies once into C(.build/swiftlinux/dependencies) inside the package;
    every link mode and product builds against those checkouts, so each dependency is fetched once.
  - Output appears in O(dest) only once every product is built and verified; a failed build leaves
    O(dest) as it was. O(dest) is replaced only when it is absent, empty, or holds exactly this module's
    previous output; anything else there stops the module before it builds.
  - Writes C(sbom.spdx.json), an SPDX 2.3 document listing the executables and the resolved dependencies.
  - Runs on the build host, usually delegated to C(localhost).
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
requirements:
  - Swift toolchain 5.9 or newer
  - pyelftools
attributes:
  check_mode:
    support: full
    description: Reports whether a build would run; builds nothing.
  diff_mode:
    support: full
    description: Shows the checksum of each executable before and after.
  idempotent:
    support: full
    description: Unchanged sources, options and toolchain give C(changed=false) and no rebuild.
options:
  package_path:
    description: Directory holding the package's C(Package.swift).
    type: path
    required: true
  products:
    description:
      - Executable products to build.
      - Empty means every executable product of the package.
    type: list
    elements: str
    default: []
  link_mode:
    description:
      - V(static_executable) links everything, libc included; the result needs only the kernel.
        On glibc this uses C(-static-executable); with O(swift_sdk) it uses the Static Linux SDK (musl).
      - V(static_stdlib) links the Swift runtime in and leaves glibc, libstdc++, libgcc_s (and libcurl,
        libxml2 for FoundationNetworking and FoundationXML) dynamic.
      - V(dynamic) links the Swift runtime as shared libraries; ship it with a bag of shared objects.
    type: str
    choices: [static_executable, static_stdlib, dynamic]
    default: static_stdlib
  configuration:
    description: SwiftPM build configuration.
    type: str
    choices: [release, debug]
    default: release
  swift_sdk:
    description:
      - A Swift SDK id as listed by C(swift sdk list), for example C(x86_64-swift-linux-musl).
      - A musl SDK builds fully static executables only, so it requires O(link_mode=static_executable).
    type: str
  swiftc_flags:
    description: Extra flags for the Swift compiler, each passed with C(-Xswiftc).
    type: list
    elements: str
    default: []
  linker_flags:
    description: Extra flags for the linker, each passed with C(-Xlinker).
    type: list
    elements: str
    default: []
  strip:
    description: Strip the executables and keep their debug info in C(<exe>.debug) beside them.
    type: bool
    default: true
  optimize_size:
    description: Optimise for size (C(-Osize)) instead of speed.
    type: bool
    default: false
  lto:
    description: Link-time optimisation mode.
    type: str
    choices: ['none', 'thin', 'full']
    default: 'none'
  dest:
    description:
      - Directory that receives the executables, debug files, resources, C(swift_build.json) and C(sbom.spdx.json).
      - It must not be the package directory, contain it, or lie inside its C(Sources).
    type: path
    required: true
  mirrors:
    description:
      - SwiftPM mirrors, each an original dependency URL as the manifest gives it mapped to the URL or local
        path of a mirror, for example a git server inside the firewall or a vendored clone.
      - Written to a SwiftPM configuration directory the module owns and passed with C(--config-path);
        the package's own files are never touched. Package.resolved keeps the original URLs.
    type: dict
    default: {}
  force_resolved_versions:
    description:
      - Take dependency versions only from the package's C(Package.resolved) (C(--force-resolved-versions))
        and fail when it is missing or out of date, instead of resolving again.
    type: bool
    default: false
    aliases: [resolution_pinned]
  build_args:
    description:
      - Extra arguments for C(swift build), passed after the module's own, for example C([--jobs, '1']) or
        C([-Xcc, -DNDEBUG]).
      - They enter the fingerprint, so changing them rebuilds.
      - C(--package-path), C(--scratch-path) and C(--config-path) are refused; use O(package_path),
        O(scratch_path) and O(mirrors).
    type: list
    elements: str
    default: []
  scratch_path:
    description:
      - SwiftPM scratch directory for this build.
      - Defaults to C(.build/swiftlinux/<link_mode>-<configuration>) inside the package, so each mode keeps
        its own incremental build.
    type: path
  swift_executable:
    description:
      - Path of the C(swift) driver.
      - By default C(swift) is looked up on C(PATH), in E(SWIFT_TOOLCHAIN_BIN), then in C(/opt/swift/usr/bin).
    type: path
  force:
    description: Build even when nothing changed.
    type: bool
    default: false
notes:
  - Fully static glibc executables resolve host names only through the NSS modules built into static glibc,
    C(files) (C(/etc/hosts)) and C(dns) (C(/etc/resolv.conf)); modules loaded as shared objects, such as
    C(myhostname), C(resolve) (systemd-resolved), C(mdns) or C(ldap), are not available. See the README.
  - Check mode still resolves dependencies (fetching them and writing C(Package.resolved) as SwiftPM does),
    because the fingerprint covers their sources.
  - FoundationNetworking and FoundationXML need libcurl and libxml2, which are only
    available as shared libraries on glibc, so they require O(link_mode=static_stdlib) or O(swift_sdk).
"""

EXAMPLES = r"""
- name: Build every executable as a fully static binary
  swiftlinux.deploy.swift_build:
    package_path: "{{ playbook_dir }}/../service"
    link_mode: static_executable
    dest: "{{ playbook_dir }}/dist/static"
  delegate_to: localhost
  register: build

- name: Build one product with the Swift runtime linked in, optimised for size
  swiftlinux.deploy.swift_build:
    package_path: /src/api
    products: [api-server]
    link_mode: static_stdlib
    optimize_size: true
    lto: full
    dest: /srv/artifacts/api
  delegate_to: localhost

- name: Build a server whose dependencies come from an internal mirror, with pinned versions
  swiftlinux.deploy.swift_build:
    package_path: /src/api
    link_mode: static_executable
    mirrors:
      https://github.com/apple/swift-nio.git: https://git.example.internal/mirrors/swift-nio.git
    force_resolved_versions: true
    build_args: [--jobs, "2"]
    dest: /srv/artifacts/api-static
  delegate_to: localhost

- name: Build with the Static Linux SDK (musl) when it is installed
  swiftlinux.deploy.swift_build:
    package_path: /src/api
    link_mode: static_executable
    swift_sdk: x86_64-swift-linux-musl
    dest: /srv/artifacts/api-musl
  delegate_to: localhost
"""

RETURN = r"""
link_mode:
  description: The link mode that was built.
  returned: always
  type: str
  sample: static_executable
configuration:
  description: The SwiftPM configuration.
  returned: always
  type: str
  sample: release
swift_version:
  description: Version of the toolchain that built the products.
  returned: always
  type: str
  sample: 6.3.1
swift_sdk:
  description: The Swift SDK used, or null for the host toolchain.
  returned: always
  type: str
fingerprint:
  description: sha256 over the package sources, its local dependencies, the options and the toolchain.
  returned: always
  type: str
dependencies:
  description:
    - The resolved package dependencies (from C(Package.resolved)), sorted by identity; also recorded in
      C(swift_build.json) and C(sbom.spdx.json). Local path dependencies are not pinned and not listed.
  returned: always
  type: list
  elements: dict
  contains:
    identity:
      description: SwiftPM's identity of the dependency.
      type: str
      sample: swift-nio
    url:
      description: The URL as the manifest gives it (not the mirror).
      type: str
      sample: https://github.com/apple/swift-nio.git
    version:
      description: The resolved version, or null for a branch or revision pin.
      type: str
      sample: 2.65.0
    revision:
      description: The resolved commit.
      type: str
    branch:
      description: The branch, for a branch pin, else null.
      type: str
sbom:
  description: Path of the SPDX 2.3 document C(sbom.spdx.json) in O(dest).
  returned: always
  type: str
  sample: /srv/artifacts/api/sbom.spdx.json
manifest:
  description: Path of C(swift_build.json) in O(dest), which records this result.
  returned: always
  type: str
  sample: /srv/artifacts/api/swift_build.json
products:
  description:
    - One entry per executable product, keyed by product name.
    - Empty in check mode when a build would run.
  returned: always
  type: dict
  contains:
    path:
      description: The executable in O(dest).
      type: str
      sample: /srv/artifacts/api/api-server
    sha256:
      description: Checksum of the executable as shipped.
      type: str
    size:
      description: Size in bytes of the executable as shipped (stripped unless O(strip=false)).
      type: int
    unstripped_size:
      description: Size in bytes of the executable as the linker wrote it.
      type: int
    debug_file:
      description: The C(<exe>.debug) file, or null when O(strip=false).
      type: str
    debug_size:
      description: Size in bytes of the debug file, or 0.
      type: int
    resources:
      description: Resource bundle directories copied beside the executable.
      type: list
      elements: str
    backtracer:
      description: Path of the C(swift-backtrace-static) copied for static modes, or null.
      type: str
    elf:
      description: The facts M(swiftlinux.deploy.elf_info) reports for the executable.
      type: dict
"""

import hashlib
import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _files, _swift
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import read_json, sha256_file, unwritable_reason
from ansible_collections.swiftlinux.deploy.plugins.module_utils import _manifest
from ansible_collections.swiftlinux.deploy.plugins.module_utils._sbom import spdx_build_document
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import LINK_MODE_FLAGS, link_mode_problem

try:
    from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import ElfError, elf_facts
    ELF_IMPORT_ERROR = None
except ImportError as exc:  # pyelftools missing on the build host
    ELF_IMPORT_ERROR = exc

MANIFEST = _manifest.BUILD_MANIFEST
SBOM = "sbom.spdx.json"
OWNER = "swift_build"
# Set by the module from its own options; the same flags in build_args would send SwiftPM elsewhere.
_RESERVED_BUILD_ARGS = ("--package-path", "--scratch-path", "--config-path")
BACKTRACER = "swift-backtrace-static"
# Undefined symbols that mean FoundationNetworking/FoundationXML met a fully static glibc link.
_SHARED_ONLY_SYMBOLS = ("curl_", "xml", "CFURLSession")


class BuildError(Exception):
    """One sentence (plus optional compiler lines) for fail_json."""


def _find_swift(module):
    swift = module.params["swift_executable"]
    if swift:
        if not os.access(swift, os.X_OK):
            module.fail_json(msg="swift_executable %s is not an executable file; point it at the toolchain's usr/bin/swift" % swift)
        return swift
    swift = module.get_bin_path("swift", opt_dirs=list(_swift.toolchain_dirs()))
    if not swift:
        module.fail_json(msg="Swift toolchain not found on PATH, in SWIFT_TOOLCHAIN_BIN or in /opt/swift/usr/bin; "
                             "install Swift 5.9 or newer from swift.org or set swift_executable")
    return swift


def _objcopy(module, swift):
    for candidate in (os.path.join(os.path.dirname(swift), "llvm-objcopy"), module.get_bin_path("objcopy")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    module.fail_json(msg="neither the toolchain's llvm-objcopy nor objcopy was found; install binutils or set strip=false")
    return None


def _check_package(module, package_path):
    if not os.path.isdir(package_path):
        module.fail_json(msg="package_path %s does not exist or is not a directory; point it at a Swift package" % package_path)
    if not os.path.isfile(os.path.join(package_path, "Package.swift")):
        module.fail_json(msg="%s has no Package.swift, so it is not a Swift package; point package_path at the "
                             "directory that holds Package.swift" % package_path)


def _inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _check_dest(module, dest, package_path):
    real_dest, real_package = os.path.realpath(dest), os.path.realpath(package_path)
    if _inside(real_package, real_dest) or _inside(real_dest, os.path.join(real_package, "Sources")):
        module.fail_json(msg="dest %s is or holds the package %s or lies inside its Sources, where the build output "
                             "would replace sources; choose a dest outside the package's sources, such as %s"
                             % (dest, package_path, os.path.join(package_path, "dist")))
    if os.path.exists(dest) and not os.path.isdir(dest):
        module.fail_json(msg="dest %s exists and is not a directory; choose a directory for the build output" % dest)
    reason = unwritable_reason(dest)
    if reason:
        module.fail_json(msg="dest %s cannot be written (%s); choose a writable directory" % (dest, reason))
    try:
        _files.check_replaceable(dest, OWNER)
    except _files.NotOurs as exc:
        module.fail_json(msg=str(exc))


def _check_dependency_options(module):
    params = module.params
    for original, mirror in params["mirrors"].items():
        if not isinstance(mirror, str) or not original or not mirror:
            module.fail_json(msg="mirrors maps each dependency URL to one mirror URL or path; %r: %r is not that"
                                 % (original, mirror))
        if mirror.startswith("/") and not os.path.isdir(mirror):
            module.fail_json(msg="the mirror %s for %s is not a directory; give the path of a git repository or a "
                                 "mirror URL" % (mirror, original))
    for arg in params["build_args"]:
        if arg.split("=", 1)[0] in _RESERVED_BUILD_ARGS:
            module.fail_json(msg="build_args must not contain %s; set package_path, scratch_path or mirrors instead"
                                 % arg.split("=", 1)[0])


def _resolution_options(params):
    """SwiftPM options for resolving: the shared dependency folder, and the module's mirror configuration."""
    base = os.path.join(params["package_path"], ".build", "swiftlinux")
    options = ["--disable-dependency-cache"]  # one clone per package, and git's own error when it fails
    if params["mirrors"]:
        config = os.path.join(base, "config")
        os.makedirs(config, exist_ok=True)
        entries = [{"original": o, "mirror": m} for o, m in sorted(params["mirrors"].items())]
        with open(os.path.join(config, "mirrors.json"), "w") as handle:
            json.dump({"object": entries, "version": 1}, handle, indent=2, sort_keys=True)
        options += ["--config-path", config]
    return os.path.join(base, "dependencies"), options


def _select_products(module, description):
    executables = _swift.executable_products(description)
    wanted = module.params["products"] or executables
    all_products = [p["name"] for p in description.get("products", ())]
    for name in wanted:
        if name in executables:
            continue
        if name in all_products:
            module.fail_json(msg="product %s is a library, not an executable; executable products of %s: %s"
                                 % (name, description["name"], ", ".join(executables) or "none"))
        module.fail_json(msg="package %s has no product %s; executable products: %s"
                             % (description["name"], name, ", ".join(executables) or "none"))
    if not wanted:
        module.fail_json(msg="package %s has no executable products; add an executableTarget and an .executable product"
                             % description["name"])
    return wanted


def _check_sdk(module, run, swift):
    sdk, mode = module.params["swift_sdk"], module.params["link_mode"]
    if not sdk:
        return
    installed = _swift.installed_sdks(run, swift)
    if sdk not in installed:
        module.fail_json(msg="Swift SDK %s is not installed (installed: %s); install it with 'swift sdk install <bundle>' "
                             "or leave swift_sdk unset to use the host toolchain" % (sdk, ", ".join(installed) or "none"))
    if "musl" in sdk and mode != "static_executable":
        module.fail_json(msg="Swift SDK %s builds fully static executables only; use link_mode=static_executable" % sdk)


def _build_command(params, swift, scratch, spm_options):
    cmd = [swift, "build", "-c", params["configuration"], "--package-path", params["package_path"],
           "--scratch-path", scratch] + spm_options
    if params["swift_sdk"]:
        cmd += ["--swift-sdk", params["swift_sdk"]]
        if params["link_mode"] != "static_executable":
            cmd += list(LINK_MODE_FLAGS[params["link_mode"]])
    else:
        cmd += list(LINK_MODE_FLAGS[params["link_mode"]])
    if params["optimize_size"]:
        cmd += ["-Xswiftc", "-Osize"]
    if params["lto"] != "none":
        cmd.append("--experimental-lto-mode=%s" % params["lto"])
    for flag in params["swiftc_flags"]:
        cmd += ["-Xswiftc", flag]
    for flag in params["linker_flags"]:
        cmd += ["-Xlinker", flag]
    return cmd + params["build_args"]


def _explain_build_failure(params, output):
    lines = _swift.error_lines(output)
    undefined = [line for line in lines if "undefined reference" in line or "undefined symbol" in line]
    if (params["link_mode"] == "static_executable" and not params["swift_sdk"]
            and any(sym in line for line in undefined for sym in _SHARED_ONLY_SYMBOLS)):
        return BuildError(
            "link_mode static_executable cannot link FoundationNetworking or FoundationXML against glibc: "
            "libcurl and libxml2 exist only as shared libraries here. Use link_mode static_stdlib, or install "
            "the Static Linux SDK and set swift_sdk. Linker errors:\n" + "\n".join(lines[:8]))
    return BuildError("swift build failed:\n" + "\n".join(lines or output.strip().splitlines()[-20:]))


def _fingerprint(params, paths, version, scratch, dependencies):
    """sha256 over the sources of `paths` (the package and every package it depends on), the options that
    shape the build, the toolchain's version and the resolved dependencies."""
    options = {k: params[k] for k in ("products", "link_mode", "configuration", "swift_sdk", "swiftc_flags",
                                      "linker_flags", "strip", "optimize_size", "lto", "mirrors",
                                      "force_resolved_versions", "build_args")}
    sources = _swift.source_fingerprint(paths, skip=(params["dest"], scratch))
    blob = json.dumps({"sources": sources, "options": options, "swift": version, "dependencies": dependencies},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _recorded_paths(previous, package_path):
    """The package directories the previous build's fingerprint covered, if its record names them and the
    first is this package (the same output may have been built from another package before)."""
    paths = (previous or {}).get("source_paths")
    if not (isinstance(paths, list) and paths and all(isinstance(p, str) and os.path.isabs(p) for p in paths)):
        return None
    return paths if os.path.realpath(paths[0]) == os.path.realpath(package_path) else None


def _up_to_date(previous, fingerprint):
    if not previous or previous.get("fingerprint") != fingerprint:
        return False
    return all(os.path.isfile(p["path"]) and sha256_file(p["path"]) == p["sha256"]
               for p in previous.get("products", {}).values())


def _stage_product(module, name, bin_dir, stage, dest, description, objcopy, backtracer):
    params = module.params
    built = os.path.join(bin_dir, name)
    staged = os.path.join(stage, name)
    shutil.copy2(built, staged)
    debug_file = None
    if params["strip"]:
        debug_name = name + ".debug"
        for args in (["--only-keep-debug", name, debug_name],
                     ["--strip-all", "--add-gnu-debuglink=%s" % debug_name, name]):
            rc, out, err = module.run_command([objcopy] + args, cwd=stage)
            if rc != 0:
                raise BuildError("%s %s failed: %s" % (objcopy, " ".join(args), (err or out).strip()))
        os.chmod(os.path.join(stage, debug_name), 0o644)  # data for debuggers, not a program
        debug_file = os.path.join(dest, debug_name)

    facts = elf_facts(staged)
    problem = link_mode_problem(params["link_mode"], facts)
    if problem:
        raise BuildError("%s was built with link_mode %s but %s; check swiftc_flags and linker_flags for "
                         "flags that change linking" % (name, params["link_mode"], problem))

    resources = []
    for bundle in _swift.resource_bundles(description, name):
        source = os.path.join(bin_dir, bundle)
        if os.path.isdir(source):
            if not os.path.exists(os.path.join(stage, bundle)):
                shutil.copytree(source, os.path.join(stage, bundle), symlinks=True)
            resources.append(os.path.join(dest, bundle))

    facts["path"] = os.path.join(dest, name)
    return {
        "path": os.path.join(dest, name),
        "sha256": facts["sha256"],
        "size": facts["size"],
        "unstripped_size": os.path.getsize(built),
        "debug_file": debug_file,
        "debug_size": os.path.getsize(os.path.join(stage, name + ".debug")) if debug_file else 0,
        "resources": resources,
        "backtracer": os.path.join(dest, BACKTRACER) if backtracer else None,
        "elf": facts,
    }


def _backtracer_source(params, swift):
    if params["link_mode"] == "dynamic" or params["swift_sdk"]:
        return None
    candidate = os.path.join(os.path.dirname(swift), os.pardir, "libexec", "swift", "linux", BACKTRACER)
    return os.path.realpath(candidate) if os.path.isfile(candidate) else None


def _sbom_files(results):
    return [{"path": os.path.basename(p["path"]), "sha256": p["sha256"], "size": p["size"]} for p in results.values()]


def _build(module, run, swift, version, scratch, fingerprint, description, products, build_context):
    params = module.params
    dest = params["dest"]
    resolved_dir, spm_options, dependencies, paths = build_context
    _swift.share_dependencies(resolved_dir, scratch)
    output = ""
    for product in products if params["products"] else [None]:
        cmd = _build_command(params, swift, scratch, spm_options) + (["--product", product] if product else [])
        rc, out, err = run(cmd)
        output = out + "\n" + err
        if rc != 0:
            raise _explain_build_failure(params, output)
    rc, bin_dir, err = run(_build_command(params, swift, scratch, spm_options) + ["--show-bin-path"])
    if rc != 0:
        raise BuildError("swift build --show-bin-path failed: %s" % err.strip())
    bin_dir = bin_dir.strip().splitlines()[-1]

    objcopy = _objcopy(module, swift) if params["strip"] else None
    backtracer = _backtracer_source(params, swift)
    parent = os.path.dirname(dest.rstrip("/")) or "/"
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".%s.staging-" % os.path.basename(dest.rstrip("/")), dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it 0700; dest should look like any directory
    try:
        results = {name: _stage_product(module, name, bin_dir, stage, dest, description, objcopy, backtracer)
                   for name in products}
        if backtracer:
            shutil.copy2(backtracer, os.path.join(stage, BACKTRACER))
        record = {"fingerprint": fingerprint, "link_mode": params["link_mode"],
                  "configuration": params["configuration"], "swift_version": version,
                  "swift_sdk": params["swift_sdk"], "products": results, "dependencies": dependencies,
                  "source_paths": paths}
        with open(os.path.join(stage, MANIFEST), "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
        with open(os.path.join(stage, SBOM), "w") as handle:
            json.dump(spdx_build_document(description["name"], _sbom_files(results), dependencies), handle,
                      indent=2, sort_keys=True)
        _files.replace_directory(stage, dest, OWNER)
    finally:
        if os.path.isdir(stage):
            shutil.rmtree(stage)
    return record


def main():
    module = AnsibleModule(
        argument_spec=dict(
            package_path=dict(type="path", required=True),
            products=dict(type="list", elements="str", default=[]),
            link_mode=dict(type="str", default="static_stdlib", choices=list(LINK_MODE_FLAGS)),
            configuration=dict(type="str", default="release", choices=["release", "debug"]),
            swift_sdk=dict(type="str"),
            swiftc_flags=dict(type="list", elements="str", default=[]),
            linker_flags=dict(type="list", elements="str", default=[]),
            strip=dict(type="bool", default=True),
            optimize_size=dict(type="bool", default=False),
            lto=dict(type="str", default="none", choices=["none", "thin", "full"]),
            dest=dict(type="path", required=True),
            mirrors=dict(type="dict", default={}),
            force_resolved_versions=dict(type="bool", default=False, aliases=["resolution_pinned"]),
            build_args=dict(type="list", elements="str", default=[]),
            scratch_path=dict(type="path"),
            swift_executable=dict(type="path"),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if ELF_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("pyelftools"), exception=str(ELF_IMPORT_ERROR))
    params = module.params
    params["dest"] = os.path.abspath(params["dest"])
    params["package_path"] = os.path.abspath(params["package_path"])
    _check_package(module, params["package_path"])
    _check_dest(module, params["dest"], params["package_path"])
    _check_dependency_options(module)
    swift = _find_swift(module)

    def run(cmd):
        return module.run_command(cmd, cwd=params["package_path"])

    try:
        version = _swift.swift_version(run, swift)
        _check_sdk(module, run, swift)
        resolved_dir, spm_options = _resolution_options(params)
        resolution = ["--scratch-path", resolved_dir] + spm_options
        scratch = params["scratch_path"] or os.path.join(
            params["package_path"], ".build", "swiftlinux",
            "%s-%s%s" % (params["link_mode"], params["configuration"],
                         "-" + params["swift_sdk"] if params["swift_sdk"] else ""))
        previous = read_json(os.path.join(params["dest"], MANIFEST))
        before = {n: p["sha256"] for n, p in (previous or {}).get("products", {}).items()}
        result = dict(changed=False, link_mode=params["link_mode"], configuration=params["configuration"],
                      swift_version=version, swift_sdk=params["swift_sdk"],
                      manifest=os.path.join(params["dest"], MANIFEST), sbom=os.path.join(params["dest"], SBOM),
                      products={})
        # Up to date without asking SwiftPM: the sources of the packages the last build covered, the options,
        # the toolchain and Package.resolved give the fingerprint it recorded. A changed manifest changes the
        # package's own sources, so a new or removed dependency always takes the full path below.
        recorded = _recorded_paths(previous, params["package_path"])
        if not params["force"] and recorded:
            dependencies = _swift.resolved_dependencies(params["package_path"])
            fingerprint = _fingerprint(params, recorded, version, scratch, dependencies)
            if _up_to_date(previous, fingerprint):
                result.update(fingerprint=fingerprint, dependencies=dependencies, products=previous["products"])
                module.exit_json(**result)
        _swift.resolve_dependencies(run, swift, params["package_path"], resolution,
                                    pinned=params["force_resolved_versions"], mirrors=params["mirrors"])
        dependencies = _swift.resolved_dependencies(params["package_path"])
        description = _swift.describe_package(run, swift, params["package_path"], resolution)
        products = _select_products(module, description)
        paths = _swift.package_paths(run, swift, params["package_path"], resolution)
        fingerprint = _fingerprint(params, paths, version, scratch, dependencies)
        result.update(fingerprint=fingerprint, dependencies=dependencies)
        if not params["force"] and _up_to_date(previous, fingerprint):
            result["products"] = previous["products"]
            module.exit_json(**result)
        result["changed"] = True
        if module.check_mode:
            result["diff"] = dict(before=before, after={n: "(built on apply)" for n in products})
            module.exit_json(**result)
        record = _build(module, run, swift, version, scratch, fingerprint, description, products,
                        (resolved_dir, spm_options, dependencies, paths))
    except (_swift.SwiftError, BuildError, ElfError, _files.NotOurs) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot write the build output to %s: %s; choose a writable dest"
                             % (params["dest"], exc.strerror or exc))
    result["products"] = record["products"]
    result["changed"] = {n: p["sha256"] for n, p in record["products"].items()} != before or params["force"]
    result["diff"] = dict(before=before, after={n: p["sha256"] for n, p in record["products"].items()})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
