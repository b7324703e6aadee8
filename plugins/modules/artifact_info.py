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
  - Runs where the artifact is, usually the controller. There, on the C(local) connection (for example a task
    delegated to C(localhost)), its action plugin describes the artifact in the controller's own process, so a
    role that describes the artifact for every host of a fleet starts no module process per host; on any other
    connection the module runs on the target as usual.
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
backtracer:
  description:
    - The Swift backtracer the artifact carries, relative to the release directory, or null without one;
      C(swift-backtrace-static) beside a static build, C(libexec/swift-backtrace) in a bag (C(bin/swift-backtrace)
      for scope V(all)). Deploy it with the program and set E(SWIFT_BACKTRACE) to
      C(enable=yes,sanitize=yes,swift-backtrace=<release>/<backtracer>), as the C(service) role does.
  returned: always
  type: str
  sample: libexec/swift-backtrace
  version_added: 0.5.0
needs_shell:
  description: Whether the entry point is a script that needs C(/bin/sh) on the host (a bag's launcher).
  returned: always
  type: bool
  version_added: 0.5.0
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swiftlinux.deploy.plugins.module_utils._artifact import ARGUMENT_SPEC, describe_or_error


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    info, error = describe_or_error(module.params["path"], module.params["executable"],
                                    module.params["include_debug_info"])
    if error:
        module.fail_json(msg=error)
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
