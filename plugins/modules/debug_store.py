#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: debug_store
short_description: File executables and their debug files into a store keyed by GNU build-id
version_added: 0.1.0
description:
  - Files each executable or shared library, and the C(<name>.debug) file beside it, into O(store) under the
    layout debuginfod clients ask a server for, C(<store>/buildid/<build-id>/executable) and
    C(<store>/buildid/<build-id>/debuginfo).
  - The folder can be served as it is, by Debian's C(debuginfod -F) or any static HTTP server, to gdb,
    C(debuginfod-find), C(llvm-symbolizer) and M(swiftlinux.deploy.symbolicate).
  - The build-id is read from the file (the same one M(swiftlinux.deploy.elf_info) reports) and checked as hex
    before it names a folder; a debug file whose build-id differs from its executable's is refused. Nothing is
    written outside O(store), and files are replaced with an atomic rename.
  - A folder in O(paths) (a M(swiftlinux.deploy.swift_build) dest, or a bag from
    M(swiftlinux.deploy.shared_objects)) is walked for ELF files, so a bag's libraries are filed under their own
    build-ids; links are not followed.
  - Runs where the store is, usually the build host.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
requirements:
  - pyelftools
attributes:
  check_mode:
    support: full
    description: Reports which build-ids would be filed; writes nothing.
  diff_mode:
    support: none
    description: The result lists what was written.
  idempotent:
    support: full
    description: Filing the same files again changes nothing and reports C(changed=false).
options:
  store:
    description:
      - The store folder. It is created when absent; an existing folder must be empty or already a store
        (it has a C(buildid/) folder).
    type: path
    required: true
  paths:
    description:
      - Executables, shared libraries, or folders holding them. For each file C(<name>), C(<name>.debug) beside it,
        when present, is filed as its debug file.
    type: list
    elements: path
    required: true
notes:
  - "To serve the store on 127.0.0.1 to gdb and other tools, see docs/debugging.md: C(debuginfod -F STORE) indexes it,
    and since the files already sit at the URLs a client asks for, C(python3 -m http.server --bind 127.0.0.1
    --directory STORE) serves it too."
seealso:
  - module: swiftlinux.deploy.symbolicate
  - module: swiftlinux.deploy.swift_build
"""

EXAMPLES = r"""
- name: Build the service
  swiftlinux.deploy.swift_build:
    package_path: /src/my-server
    link_mode: static_executable
    dest: /srv/builds/my-server/static_executable
  register: build

- name: File the executable and its debug file by build-id
  swiftlinux.deploy.debug_store:
    store: /srv/debug-store
    paths:
      - /srv/builds/my-server/static_executable

- name: File a bag, so frames inside its libraries resolve too
  swiftlinux.deploy.debug_store:
    store: /srv/debug-store
    paths: [/srv/bags/my-server]
"""

RETURN = r"""
store:
  description: The store's absolute path.
  type: str
  returned: always
  sample: /srv/debug-store
filed:
  description: One entry per executable or library, in the order found.
  type: list
  elements: dict
  returned: always
  contains:
    build_id:
      description: The GNU build-id, lower-case hex.
      type: str
      sample: ff9b009e9fd71ac24fed37fa2770e7d66c28fa39
    path:
      description: The build-id's folder in the store.
      type: str
      sample: /srv/debug-store/buildid/ff9b009e9fd71ac24fed37fa2770e7d66c28fa39
    executable:
      description: The file filed as C(executable).
      type: str
      sample: /srv/builds/my-server/static_executable/my-server
    debug_file:
      description: The file filed as C(debuginfo), or V(null) when none lay beside the executable.
      type: str
      sample: /srv/builds/my-server/static_executable/my-server.debug
    changed:
      description: Whether this entry was written (or would be, in check mode).
      type: bool
      sample: true
    written:
      description: Which of C(executable) and C(debuginfo) were written.
      type: list
      elements: str
      sample: [debuginfo, executable]
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import HAS_ELFTOOLS

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _debugstore


def main():
    module = AnsibleModule(
        argument_spec=dict(
            store=dict(type="path", required=True),
            paths=dict(type="list", elements="path", required=True),
        ),
        supports_check_mode=True,
    )
    if not HAS_ELFTOOLS:
        module.fail_json(msg=missing_required_lib("pyelftools", url="https://pypi.org/project/pyelftools/"))
    store = os.path.abspath(module.params["store"])
    if not module.params["paths"]:
        module.fail_json(msg="paths is empty; give the build folders, bags or executables to file")
    try:
        pairs = _debugstore.plan([os.path.abspath(p) for p in module.params["paths"]])
        if not pairs:
            module.fail_json(msg="no ELF file found in %s; give a swift_build dest, a bag or an executable"
                             % ", ".join(module.params["paths"]))
        created = _debugstore.create_store(store, module.check_mode)
        root = os.path.realpath(store)
        filed = [_debugstore.file_build(root, exe, debug, module.check_mode) for exe, debug in pairs]
    except _debugstore.StoreError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot write the debug store %s: %s; choose a writable folder"
                         % (store, exc.strerror or exc))
    module.exit_json(changed=created or any(entry["changed"] for entry in filed), store=store, filed=filed)


if __name__ == "__main__":
    main()
