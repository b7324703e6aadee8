#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: shared_objects
short_description: Bag dynamically linked executables with the shared libraries they load
version_added: 0.1.0
description:
  - Collects the shared libraries one or more executables load into a self-contained directory, the bag, so a
    program built with O(swiftlinux.deploy.swift_build#module:link_mode=dynamic) runs on a host without a Swift
    toolchain. This is option 1 of SE-0342, done properly.
  - "Layout: C(bin/<exe>) with its resource bundles beside it; C(lib/) with the libraries as real files and their
    SONAME symlinks; C(bag.json), the manifest; C(bag.spdx.json), an SPDX 2.3 SBOM, created at E(SOURCE_DATE_EPOCH)
    (0 when unset), so the same inputs give the same bytes."
  - Each executable gets C(DT_RUNPATH=$ORIGIN/../lib) and each bagged library that loads another bagged library gets
    C(DT_RUNPATH=$ORIGIN), both set with patchelf. RUNPATH rather than RPATH because RPATH is inherited by every
    library loaded later, including ones the program opens with C(dlopen) and ones from the host, and because RUNPATH
    still lets E(LD_LIBRARY_PATH) override a library when debugging. Setting it on each library covers transitive
    dependencies, which a RUNPATH on the executable alone does not.
  - With O(scope=all) glibc and the dynamic loader are bagged too. C(bin/<exe>) is then a small POSIX sh launcher
    that runs C(lib/<loader> --library-path <bag>/lib --argv0 <exe> libexec/<exe>), so the program uses the bundled
    glibc on older hosts without setting E(LD_LIBRARY_PATH) for its child processes. The manifest's RV(manifest.launch)
    gives the same command in exec form for images without a shell.
  - The bag carries the Swift runtime's backtracer, so a crash prints a crash report (see O(backtrace)). It is the
    toolchain's dynamic C(swift-backtrace) with C(DT_RUNPATH=$ORIGIN/../lib), in C(libexec/swift-backtrace) (for
    O(scope=all) C(bin/swift-backtrace) is a launcher like the programs', with the real file in C(libexec/)); the
    libraries it loads are bagged by the same O(scope) rules as the programs'. RV(manifest.backtracer) names it, and the
    M(swiftlinux.deploy.artifact_info) RV(swiftlinux.deploy.artifact_info#module:backtracer) of the bag too, so the
    C(service) role sets E(SWIFT_BACKTRACE) for it.
  - The bag appears in O(dest) only when it is complete; a failure leaves O(dest) as it was.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
requirements:
  - pyelftools
  - patchelf
  - dpkg-query (optional; without it the manifest records no package owners)
attributes:
  check_mode:
    support: full
    description: Resolves and lays out the bag in a temporary directory to report the manifest; O(dest) is not touched.
  diff_mode:
    support: full
    description: Shows the bag's files with their checksums before and after.
  idempotent:
    support: full
    description: >-
      Unchanged executables, options, resources and resolved libraries (compared by checksum with the previous
      manifest) give C(changed=false), as long as the bag's files still match the manifest.
options:
  executables:
    description: Paths of the executables to bag. Their file names become C(bin/<name>).
    type: list
    elements: path
    required: true
  dest:
    description:
      - The bag's root directory. It must be new, empty or a bag this module wrote, holding nothing added since
        (the module records its output in C(.swiftlinux-output.json)).
      - Anything else is left untouched and the run fails, naming what it found.
    type: path
    required: true
  scope:
    description:
      - V(swift) copies only the Swift toolchain's libraries (C(libswift*), Foundation, dispatch, BlocksRuntime).
      - V(non-system) copies everything except the base set every glibc host provides (the glibc family, libstdc++,
        libgcc_s); that includes libcurl and libxml2 and their dependencies for FoundationNetworking and FoundationXML.
      - V(all) copies everything, glibc and the dynamic loader included, for hosts with an older glibc and for scratch
        images.
    type: str
    choices: [swift, non-system, all]
    default: non-system
  resolver:
    description:
      - V(elf) reads the ELF headers (pyelftools) and searches like glibc's loader - DT_RPATH and DT_RUNPATH with
        C($ORIGIN), C(/etc/ld.so.conf) with its includes, then the default directories. It runs nothing, so it is
        safe for untrusted binaries.
      - V(ldd) asks the system loader through C(ldd), which loads the program. It is refused for binaries of another
        architecture or with an interpreter that is not glibc's. Both resolvers give the same result for the
        collection's test fixtures.
      - Both ignore E(LD_LIBRARY_PATH) and E(LD_PRELOAD) of the machine running the module.
    type: str
    choices: [elf, ldd]
    default: elf
  extra_libraries:
    description:
      - Shared libraries the programs open with C(dlopen). Neither resolver can see those, so list them here;
        they are bagged whatever the O(scope), together with what they need.
    type: list
    elements: path
    default: []
  resources:
    description:
      - Directories copied into C(bin/) beside the executables, normally the SwiftPM resource bundles
        M(swiftlinux.deploy.swift_build) returns in RV(swiftlinux.deploy.swift_build#module:products[].resources).
      - Symlinks inside a bundle are kept when they stay inside it and refused when they point outside.
    type: list
    elements: path
    default: []
  strict_runtime:
    description:
      - Fail when a program would load the Swift runtime twice, for example a bagged library that embeds the runtime
        statically while the program also loads C(libswiftCore.so). When V(false) this is a warning.
    type: bool
    default: true
  backtrace:
    description:
      - Bag the Swift runtime's backtracer, so a crashing program prints a crash report (threads, frames with the
        build-id of every image) that M(swiftlinux.deploy.crash_log) and M(swiftlinux.deploy.symbolicate) read.
      - By default it is the C(swift-backtrace) of the toolchain whose C(libswiftCore.so) is bagged, found at
        C(usr/libexec/swift/linux/) beside that toolchain's C(usr/lib/swift/linux/); the runtime and its backtracer
        must come from one toolchain. With Swift 6.3 it adds 0.34 MB plus the runtime libraries it loads that the
        programs do not, for a plain service C(libswiftRuntime.so) and C(libswiftSwiftOnoneSupport.so), 2.2 MB in all.
        It needs C(GLIBC_2.34) and no libstdc++ version, no more than the runtime libraries beside it;
        C(swift-backtrace-static) would be 10 MB and need C(GLIBC_2.35) and C(GLIBCXX_3.4.29).
      - A bag whose programs do not load C(libswiftCore.so) gets none, with a warning, unless O(backtracer) is set.
      - V(false) leaves it out; the runtime then prints only a one-line crash message.
    type: bool
    default: true
    version_added: 0.5.0
  backtracer:
    description:
      - The backtracer to bag instead of the toolchain's C(swift-backtrace), for example one of the toolchain the
        programs were built with when the bagged runtime was found elsewhere. It must be a program of the programs'
        architecture; its file name is kept, so C(swift-backtrace-static) works too.
      - Only with O(backtrace=true).
    type: path
    version_added: 0.5.0
  static_sizes:
    description:
      - Size in bytes of a C(static_stdlib) build of each executable, keyed by executable name, for example from
        RV(swiftlinux.deploy.swift_build#module:products[].size) of a static_stdlib build.
      - When every executable has one, RV(manifest.bytes_saved_vs_static) is the sum of these sizes minus the bagged
        executables and Swift runtime libraries. System libraries are left out of the comparison because a
        static_stdlib build needs them from the host as well. Negative means the bag is larger.
    type: dict
notes:
  - Libraries a program opens with C(dlopen) (NSS modules, plug-ins) are invisible to both resolvers; list them in
    O(extra_libraries).
  - A fully static executable needs no libraries; it is bagged in C(bin/) with a warning and C(lib/) stays empty.
  - Changing RUNPATH rewrites the executable, so its C(.gnu_debuglink) checksum no longer matches the separate debug
    file; debuggers still find it by build-id.
  - Swift 6.3's C(libswiftRuntime.so), which only the backtracer loads, asks for an executable stack; the loader would
    need C(mprotect(PROT_EXEC)) for that, which C(MemoryDenyWriteExecute=yes) in the C(service) role's unit refuses, so
    the backtracer could not start. The bag's copy of every library that only the backtracer loads has that request
    cleared (the C(PF_X) bit of C(PT_GNU_STACK), as C(execstack -c) does); the programs' own libraries are never changed
    this way.
seealso:
  - module: swiftlinux.deploy.swift_build
  - module: swiftlinux.deploy.elf_info
"""

EXAMPLES = r"""
- name: Build the service with the Swift runtime as shared libraries
  swiftlinux.deploy.swift_build:
    package_path: /src/api
    link_mode: dynamic
    dest: /srv/build/api
  delegate_to: localhost
  register: build

- name: Bag it with every library a Debian host without Swift lacks
  swiftlinux.deploy.shared_objects:
    executables: "{{ build.products.values() | map(attribute='path') | list }}"
    resources: "{{ build.products.values() | map(attribute='resources') | flatten }}"
    dest: /srv/bags/api
  delegate_to: localhost
  register: bag

- name: Bag glibc and the loader too, for an older host or a scratch image
  swiftlinux.deploy.shared_objects:
    executables: [/srv/build/api/api-server]
    scope: all
    dest: /srv/bags/api-all
  delegate_to: localhost

- name: Bag a plug-in the program opens with dlopen
  swiftlinux.deploy.shared_objects:
    executables: [/srv/build/api/api-server]
    extra_libraries: [/usr/lib/x86_64-linux-gnu/libnss_files.so.2]
    scope: all
    dest: /srv/bags/api-nss
  delegate_to: localhost
"""

RETURN = r"""
dest:
  description: The bag's root directory.
  returned: always
  type: str
  sample: /srv/bags/api
manifest_path:
  description: Path of the manifest, C(<dest>/bag.json).
  returned: always
  type: str
sbom_path:
  description: Path of the SPDX 2.3 JSON SBOM, C(<dest>/bag.spdx.json).
  returned: always
  type: str
libraries:
  description: The names (SONAMEs as programs ask for them) of the libraries in C(lib/).
  returned: always
  type: list
  elements: str
  sample: [libswiftCore.so, libswift_Concurrency.so]
manifest:
  description: The manifest, as written to RV(manifest_path).
  returned: always
  type: dict
  contains:
    scope:
      description: The scope the bag was made with.
      type: str
    architecture:
      description: Architecture of the executables, as M(swiftlinux.deploy.elf_info) names it.
      type: str
      sample: x86_64
    executables:
      description: Names of the executables in C(bin/).
      type: list
      elements: str
    files:
      description:
        - Every regular file of the bag with C(path) (relative to the bag root), C(sha256), C(size), C(source),
          C(package) and C(package_version) (the Debian package owning the source, or null) and C(kind), one of
          C(executable), C(library), C(loader), C(resource), C(launcher), C(backtracer).
      type: list
      elements: dict
    links:
      description: Symlinks of the bag, each with C(path) and C(target).
      type: list
      elements: dict
    glibc_required:
      description: Highest C(GLIBC_) symbol version any bagged file needs, not counting glibc's own files.
      type: str
      sample: '2.34'
    glibcxx_required:
      description: Highest C(GLIBCXX_) symbol version any bagged file needs.
      type: str
    glibc_bundled:
      description: Version of the glibc in the bag (scope V(all)), else null.
      type: str
    system_libraries:
      description: Libraries the programs load that the bag leaves to the host.
      type: list
      elements: str
    interpreter:
      description: The bag's loader relative to the root for scope V(all), else the system interpreter the programs name.
      type: str
    backtracer:
      description:
        - Path of the Swift backtracer relative to the bag root, to put in E(SWIFT_BACKTRACE) as
          C(swift-backtrace=<root>/<backtracer>); null without one (O(backtrace=false)).
      type: str
      sample: libexec/swift-backtrace
      version_added: 0.5.0
    launch:
      description: Per executable, the command that starts it, relative to the bag root, in exec form.
      type: dict
      sample: {api-server: [lib/ld-linux-x86-64.so.2, --library-path, lib, --argv0, bin/api-server, libexec/api-server]}
    bytes_total:
      description: Total size of the bag's files.
      type: int
    bytes_saved_vs_static:
      description: Bytes saved against static_stdlib builds (see O(static_sizes)), or null when their sizes are unknown.
      type: int
    fingerprint:
      description: sha256 over the inputs, options and resolved libraries; an equal value means nothing changed.
      type: str
"""

import os
import re
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _files, _manifest

try:
    from ansible_collections.swiftlinux.deploy.plugins.module_utils import _bag
    from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import HAS_ELFTOOLS, ElfError
    from ansible_collections.swiftlinux.deploy.plugins.module_utils._resolve import Facts
    from ansible_collections.swiftlinux.deploy.plugins.module_utils._sbom import spdx_document
    IMPORT_ERROR = None if HAS_ELFTOOLS else ImportError("No module named 'elftools'")
except ImportError as exc:
    IMPORT_ERROR = exc

MANIFEST = _manifest.BAG_MANIFEST
SBOM = "bag.spdx.json"
_MANIFEST_FILE_KEYS = ("path", "sha256", "size", "source", "package", "package_version", "kind")


def _inside(path, directory):
    return os.path.commonpath([path, directory]) == directory


def _check_dest(module, dest, inputs, resources):
    if os.path.lexists(dest) and not os.path.isdir(dest):
        module.fail_json(msg="dest %s exists and is not a directory; choose a directory for the bag" % dest)
    real_dest = os.path.realpath(dest)
    for directory in resources:
        if _inside(real_dest, os.path.realpath(directory)):
            module.fail_json(msg="dest %s is inside the input %s, so the bag would copy itself; choose a dest outside "
                                 "every resource directory" % (dest, directory))
    for path in inputs:
        if _inside(os.path.realpath(path), real_dest):
            module.fail_json(msg="input %s is inside dest %s, and writing the bag replaces dest; choose a dest that "
                                 "holds none of the inputs" % (path, dest))
    try:
        _files.check_replaceable(dest, "shared_objects")
    except _files.NotOurs as exc:
        module.fail_json(msg=str(exc))
    reason = _files.unwritable_reason(dest)
    if reason:
        module.fail_json(msg="dest %s cannot be written (%s); choose a writable directory" % (dest, reason))


def _previous(dest):
    """The manifest of the bag in dest, or None when there is none or it is not one shared_objects wrote."""
    if not os.path.lexists(os.path.join(dest, MANIFEST)):
        return None
    try:
        return _manifest.read_bag(dest)
    except (_manifest.ManifestError, OSError):
        return None


def _intact(dest, manifest):
    """True when every file the manifest lists is still in dest, regular and with its checksum."""
    try:
        for item in manifest["files"]:
            path = _manifest.contained(dest, item["path"], "bag file")
            if _manifest.file_type(path) != "file" or os.path.getsize(path) != item["size"]:
                return False
            if _bag.file_sha256(path) != item["sha256"]:
                return False
        return all(_manifest.file_type(_manifest.contained(dest, link["path"], "bag link")) == "link"
                   for link in manifest["links"])
    except _manifest.ManifestError:
        return False


def _glibc_version(path):
    # libc.so.6 carries its banner, "... release version 2.36.", as plain bytes.
    with open(path, "rb") as handle:
        match = re.search(rb"release version (\d+\.\d+)", handle.read())
    return match.group(1).decode() if match else None


def _bag_manifest(module, plan, fingerprint, files, links, launch):
    params = module.params
    owners = _bag.debian_owners(sorted(set(f["source"] for f in files if f["source"] and f["kind"] != "resource")),
                                module.run_command)
    for item in files:
        item["package"], item["package_version"] = owners.get(item["source"], (None, None))
    bagged = plan.bagged
    programs = plan.executables + ([plan.backtracer] if plan.backtracer else [])
    elf_files = [(e["name"], e["facts"]) for e in programs] + [(lib["name"], lib["facts"]) for lib in bagged]
    glibc, glibcxx = _bag.required_versions(plan, elf_files)
    libc = plan.libraries.get("libc.so.6")
    loader = plan.loader
    interpreters = [e["facts"]["interpreter"] for e in plan.executables if e["facts"]["interpreter"]]
    bytes_total = sum(f["size"] for f in files)
    static_sizes = params["static_sizes"] or {}
    saved = None
    if plan.executables and all(e["name"] in static_sizes for e in plan.executables):
        swift_bytes = sum(f["size"] for f in files if f["kind"] in ("executable", "launcher")) + \
            sum(os.path.getsize(lib["real"]) for lib in bagged if lib["category"] == "swift")
        saved = sum(int(static_sizes[e["name"]]) for e in plan.executables) - swift_bytes
    return {
        "format": _bag.LAYOUT_VERSION,
        "fingerprint": fingerprint,
        "scope": params["scope"],
        "resolver": params["resolver"],
        "architecture": plan.machine,
        "executables": [e["name"] for e in plan.executables],
        "backtracer": plan.backtracer_path,
        "libraries": [lib["name"] for lib in bagged],
        "system_libraries": plan.system_libraries,
        "files": [{k: f[k] for k in _MANIFEST_FILE_KEYS} for f in sorted(files, key=lambda f: f["path"])],
        "links": sorted(links, key=lambda link: link["path"]),
        "glibc_required": glibc,
        "glibcxx_required": glibcxx,
        "glibc_bundled": _glibc_version(libc["real"]) if libc and libc["bagged"] else None,
        "interpreter": "lib/" + loader["name"] if loader else (interpreters[0] if interpreters else None),
        "launch": launch,
        "bytes_total": bytes_total,
        "bytes_saved_vs_static": saved,
        "static_sizes": static_sizes or None,
        "warnings": plan.warnings,
    }


def _make_bag(module, plan, fingerprint, stage):
    def run(cmd):
        return module.run_command(cmd)

    files, links, launch = _bag.stage_bag(plan, stage, module.params["resources"], run)
    manifest = _bag_manifest(module, plan, fingerprint, files, links, launch)
    sbom = spdx_document("bag-" + "-".join(manifest["executables"]), [
        dict(f, sha1=next(s["sha1"] for s in files if s["path"] == f["path"])) for f in manifest["files"]],
        created=_created())
    _manifest.write(stage, MANIFEST, manifest)
    _manifest.write(stage, SBOM, sbom)
    return manifest


def _created():
    """The SBOM's creation time: SOURCE_DATE_EPOCH, else 0 as for images, so the same inputs give the same bag bytes
    (a code-only release then differs only where the program does)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch) if epoch.isdigit() else 0))


def _listing(manifest):
    if not manifest:
        return ""
    lines = ["%s %s" % (f["path"], f["sha256"]) for f in manifest.get("files", ())]
    lines += ["%s -> %s" % (link["path"], link["target"]) for link in manifest.get("links", ())]
    return "\n".join(sorted(lines)) + "\n"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            executables=dict(type="list", elements="path", required=True),
            dest=dict(type="path", required=True),
            scope=dict(type="str", default="non-system", choices=["swift", "non-system", "all"]),
            resolver=dict(type="str", default="elf", choices=["elf", "ldd"]),
            extra_libraries=dict(type="list", elements="path", default=[]),
            resources=dict(type="list", elements="path", default=[]),
            strict_runtime=dict(type="bool", default=True),
            static_sizes=dict(type="dict"),
            backtrace=dict(type="bool", default=True),
            backtracer=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    if IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("pyelftools"), exception=str(IMPORT_ERROR))
    params = module.params
    if not params["executables"]:
        module.fail_json(msg="executables is empty; list the paths of the programs to bag")
    dest = params["dest"] = os.path.abspath(params["dest"]).rstrip("/") or "/"
    for key in ("executables", "extra_libraries", "resources"):
        params[key] = [os.path.abspath(p) for p in params[key]]
    if params["backtracer"] and not params["backtrace"]:
        module.fail_json(msg="backtracer is set but backtrace is false; drop backtracer to leave the backtracer out, "
                             "or set backtrace=true to bag it")
    if params["backtracer"]:
        params["backtracer"] = os.path.abspath(params["backtracer"])
        if not os.path.isfile(params["backtracer"]):
            module.fail_json(msg="backtracer %s is not a file; set it to the toolchain's "
                                 "usr/libexec/swift/linux/swift-backtrace, or leave it unset to take that one"
                                 % params["backtracer"])
    _check_dest(module, dest, params["executables"] + params["extra_libraries"] + params["resources"]
                + ([params["backtracer"]] if params["backtracer"] else []),
                params["resources"])
    if not module.get_bin_path("patchelf"):
        module.fail_json(msg="patchelf is not installed, and it is needed to set RUNPATH in the bag; install it "
                             "(apt-get install patchelf)")

    def run_ldd(cmd):
        return module.run_command(cmd, environ_update={"LD_LIBRARY_PATH": "", "LD_PRELOAD": "", "LC_ALL": "C"})

    options = {k: params[k] for k in ("scope", "resolver", "strict_runtime", "static_sizes", "backtrace")}
    try:
        plan = _bag.plan_bag(params["executables"], params["extra_libraries"], params["scope"], params["resolver"],
                             Facts(), run_ldd, backtracer=params["backtracer"] or params["backtrace"] or None)
        for path in params["resources"]:
            if not os.path.isdir(path):
                raise _bag.BagError("resource bundle %s is not a directory; pass the bundle directories swift_build "
                                    "returns in products[name].resources" % path)
        fingerprint = _bag.fingerprint(plan, options, params["resources"])
    except (_bag.BagError, _bag.ResolveError, ElfError) as exc:
        module.fail_json(msg=str(exc).rstrip("."))
    if plan.runtime_problems:
        if params["strict_runtime"]:
            module.fail_json(msg="; ".join(plan.runtime_problems) + " (or set strict_runtime=false to only warn)")
        plan.warnings.extend(p[0].upper() + p[1:] for p in plan.runtime_problems)
    for warning in plan.warnings:
        module.warn(warning)

    result = dict(changed=False, dest=dest, manifest_path=os.path.join(dest, MANIFEST),
                  sbom_path=os.path.join(dest, SBOM), libraries=[lib["name"] for lib in plan.bagged])
    previous = _previous(dest)
    if previous and previous.get("fingerprint") == fingerprint and _intact(dest, previous):
        module.exit_json(manifest=previous, **result)

    parent = tempfile.gettempdir() if module.check_mode else os.path.dirname(dest)
    try:
        os.makedirs(parent, exist_ok=True)
        stage = tempfile.mkdtemp(prefix=".%s.staging-" % os.path.basename(dest), dir=parent)
        try:
            os.chmod(stage, 0o755)
            manifest = _make_bag(module, plan, fingerprint, stage)
            if not module.check_mode:
                _files.replace_directory(stage, dest, "shared_objects")
        finally:
            if os.path.isdir(stage):
                shutil.rmtree(stage)
    except (_bag.BagError, _bag.ResolveError, ElfError, _manifest.ManifestError, _files.NotOurs) as exc:
        module.fail_json(msg=str(exc).rstrip("."))
    except OSError as exc:
        module.fail_json(msg="cannot write the bag to %s: %s (%s); choose a writable dest on a filesystem with room"
                             % (dest, exc.strerror or exc, exc.filename or dest))
    result.update(changed=True, manifest=manifest, diff=dict(before=_listing(previous), after=_listing(manifest)))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
