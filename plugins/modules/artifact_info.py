#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: artifact_info
short_description: Describe a built Swift artifact for deployment and check that it is intact
version_added: 0.1.0
description:
  - Reads the manifest of an artifact directory, either C(swift_build.json) written by
    M(swiftlinux.deploy.swift_build) (one executable, static modes) or C(bag.json) written by
    M(swiftlinux.deploy.shared_objects) (a bag of shared objects), and returns what a deploy needs in one
    shape, namely the files to ship with their checksums, the command line that starts the program, and the
    facts a host preflight compares (architecture, required glibc and libstdc++ versions, system
    libraries).
  - Recomputes the checksum of every file and fails when one differs from the manifest, so a changed or
    truncated artifact is never shipped.
  - The release id is derived from the file checksums, so the same artifact always gets the same id.
  - The artifact is untrusted input. The manifest must have the shape its writer gives it (checked field by field);
    product, executable and resource names must be plain file names; every path must stay inside the artifact;
    symbolic links must be relative and resolve inside it; FIFOs, sockets and devices are refused before they are
    opened. Any of these fails with one sentence naming the file and field.
  - Runs where the artifact is, usually the controller.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
extends_documentation_fragment:
  - swiftlinux.deploy.read_only
attributes:
  check_mode:
    support: full
    description: Only reads files.
options:
  path:
    description: The artifact directory (a M(swiftlinux.deploy.swift_build) O(swiftlinux.deploy.swift_build#module:dest) or a bag).
    type: path
    required: true
  executable:
    description:
      - The program to run, by product name.
      - May be omitted when the artifact holds exactly one.
    type: str
  include_debug_info:
    description: Ship C(<exe>.debug) with a single-executable artifact.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Describe the build of api-server
  swiftlinux.deploy.artifact_info:
    path: "{{ playbook_dir }}/dist/static"
    executable: api-server
  delegate_to: localhost
  register: artifact
"""

RETURN = r"""
kind:
  description: V(executable) for a single-file build, V(bag) for a bag of shared objects.
  returned: always
  type: str
  sample: executable
link_mode:
  description: The link mode the executable was built with.
  returned: always
  type: str
  sample: static_stdlib
scope:
  description: The bag scope (V(swift), V(non-system), V(all)), or null for a single executable.
  returned: always
  type: str
executable:
  description: The product that runs.
  returned: always
  type: str
  sample: http-service
architecture:
  description: Machine of the executable, as C(uname -m) names it.
  returned: always
  type: str
  sample: x86_64
glibc_required:
  description:
    - Highest C(GLIBC_) version the host must provide, or null when the artifact brings its own C library.
  returned: always
  type: str
  sample: "2.34"
glibcxx_required:
  description: Highest C(GLIBCXX_) version the host's libstdc++ must provide, or null.
  returned: always
  type: str
  sample: 3.4.29
system_libraries:
  description: Shared libraries the host must provide (the artifact does not carry them).
  returned: always
  type: list
  elements: str
  sample: [libstdc++.so.6, libm.so.6, libgcc_s.so.1, libc.so.6, ld-linux-x86-64.so.2]
files:
  description: Files to ship, relative to the artifact directory, mapped to their sha256.
  returned: always
  type: dict
links:
  description: Symbolic links to recreate, relative path mapped to the link's target (SONAME links in a bag).
  returned: always
  type: dict
command:
  description: The argument vector that starts the program, relative to the release directory.
  returned: always
  type: list
  elements: str
  sample: [http-service]
entrypoint:
  description:
    - One file, relative to the release directory, that starts the program with no extra arguments; for a bag with
      scope V(all) it is the launcher script, which needs C(/bin/sh) on the host.
  returned: always
  type: str
  sample: bin/http-service
release_id:
  description: First 16 hex digits of a sha256 over the file list and checksums.
  returned: always
  type: str
  sample: 3f2c9a0d41b7e815
size:
  description: Total bytes shipped.
  returned: always
  type: int
"""

import hashlib
import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _manifest
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import OWNER_MARK, sha256_file
from ansible_collections.swiftlinux.deploy.plugins.module_utils._manifest import ManifestError
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import GLIBC_FAMILY, LINK_MODES


class ArtifactError(Exception):
    """A sentence for fail_json."""


def _tree(root, rel):
    """Files and symlinks under root/rel (a file or a directory), relative to root; links are not followed.

    rel and everything below it must stay inside root, and special files are refused before anything opens them.
    """
    full = root if rel == "." else _manifest.contained(root, rel, "artifact entry")
    kind = _manifest.file_type(full)
    if kind != "directory":
        return [os.path.normpath(rel)]
    found = []
    for current, dirs, files in os.walk(full):
        links = [d for d in dirs if os.path.islink(os.path.join(current, d))]
        dirs[:] = sorted(d for d in dirs if d not in links)
        for name in sorted(files + links):
            entry = os.path.join(current, name)
            _manifest.file_type(entry)
            found.append(os.path.relpath(entry, root))
    return [rel for rel in found if rel != OWNER_MARK]


def _single_executable(path, manifest, executable, include_debug):
    products = manifest["products"]
    if executable is None and len(products) == 1:
        executable = next(iter(products))
    if executable not in products:
        raise ArtifactError("%s holds the executables %s; set executable to one of them"
                            % (path, ", ".join(sorted(products)) or "(none)"))
    product, mode = products[executable], manifest["link_mode"]
    if mode not in LINK_MODES:
        raise ArtifactError("%s records the unknown link mode %r; rebuild it with swift_build (modes: %s)"
                            % (path, mode, ", ".join(LINK_MODES)))
    if mode == "dynamic":
        raise ArtifactError("%s is a dynamic build of %s, which needs the Swift runtime beside it; collect it into a "
                            "bag with swiftlinux.deploy.shared_objects and deploy the bag" % (path, executable))
    # The manifest records absolute paths of the machine that built it; only their file names count here.
    shipped = [executable] + [os.path.basename(r) for r in product["resources"]]
    if product.get("backtracer"):
        shipped.append(os.path.basename(product["backtracer"]))
    if include_debug and product.get("debug_file"):
        shipped.append(os.path.basename(product["debug_file"]))
    elf = product["elf"]
    return dict(kind="executable", link_mode=mode, scope=None, executable=executable,
                architecture=elf["machine"], glibc_required=elf.get("glibc_required"),
                glibcxx_required=elf.get("glibcxx_required"), system_libraries=elf["needed"],
                command=[executable], entrypoint=executable, expected={executable: product["sha256"]},
                shipped=[f for rel in shipped for f in _tree(path, rel)])


def _bag(path, manifest, executable):
    executables = manifest["executables"]
    if executable is None and len(executables) == 1:
        executable = executables[0]
    if executable not in executables:
        raise ArtifactError("the bag %s holds the executables %s; set executable to one of them"
                            % (path, ", ".join(executables) or "(none)"))
    scope = manifest["scope"]
    bundled = {os.path.basename(f["path"]) for f in manifest["files"] if f["kind"] in ("library", "loader")}
    needed = manifest.get("system_libraries")
    if needed is None:  # derive: what the executables need that the bag does not carry
        needed = sorted(GLIBC_FAMILY & set(manifest.get("needed") or ()) - bundled)
    own_libc = scope == "all"
    return dict(kind="bag", link_mode="dynamic", scope=scope, executable=executable,
                architecture=manifest["architecture"],
                glibc_required=None if own_libc else manifest.get("glibc_required"),
                glibcxx_required=None if own_libc else manifest.get("glibcxx_required"),
                system_libraries=[] if own_libc else needed,
                command=list(manifest["launch"].get(executable) or [os.path.join("bin", executable)]),
                entrypoint=os.path.join("bin", executable),
                expected={os.path.normpath(f["path"]): f["sha256"] for f in manifest["files"]},
                # The whole tree: SONAME links and bundle links are not in the manifest's file list.
                shipped=_tree(path, "."))


def describe(path, executable=None, include_debug=False):
    """The deploy view of an artifact directory; raises ArtifactError or ManifestError with a sentence on bad input."""
    if not os.path.isdir(path):
        raise ArtifactError("artifact %s does not exist or is not a directory; build it first with "
                            "swiftlinux.deploy.swift_build (or shared_objects for a bag)" % path)
    if os.path.lexists(os.path.join(path, _manifest.BAG_MANIFEST)):
        info = _bag(path, _manifest.read_bag(path), executable)
    elif os.path.lexists(os.path.join(path, _manifest.BUILD_MANIFEST)):
        info = _single_executable(path, _manifest.read_build(path), executable, include_debug)
    else:
        raise ArtifactError("%s has neither %s nor %s, so it is not a build artifact; point path at a "
                            "swift_build dest or a bag" % (path, _manifest.BUILD_MANIFEST, _manifest.BAG_MANIFEST))

    files, links, changed = {}, {}, []
    for rel in info.pop("shipped"):
        full = os.path.join(path, _manifest.check_relative(rel, "artifact entry"))
        kind = _manifest.file_type(full)
        if kind == "missing":
            raise ArtifactError("%s is listed in the manifest of %s but missing; rebuild the artifact" % (rel, path))
        if kind == "link":
            # e.g. a SONAME link in a bag; its target carries the checksum and must be inside the artifact too
            links[rel] = _manifest.check_link(path, rel, "symbolic link")
            continue
        files[rel] = sha256_file(_manifest.contained(path, rel, "artifact entry"))
    for rel, expected in sorted(info.pop("expected").items()):
        if rel not in files:
            raise ArtifactError("%s is listed in the manifest of %s but is not a regular file there; rebuild the "
                                "artifact" % (rel, path))
        if files[rel] != expected:
            changed.append(rel)
    if changed:
        raise ArtifactError("checksum mismatch in %s: %s changed since the manifest was written; rebuild the "
                            "artifact instead of editing it" % (path, ", ".join(changed)))
    listing = json.dumps([sorted(files.items()), sorted(links.items())]).encode()
    info.update(files=files, links=links, release_id=hashlib.sha256(listing).hexdigest()[:16],
                size=sum(os.path.getsize(os.path.join(path, rel)) for rel in files))
    return info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            executable=dict(type="str"),
            include_debug_info=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        info = describe(module.params["path"], module.params["executable"], module.params["include_debug_info"])
    except (ArtifactError, ManifestError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot read artifact %s: %s; make it readable or rebuild it"
                             % (module.params["path"], exc))
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
