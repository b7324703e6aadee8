#!/usr/bin/python
#
# Copyright (c) 2025, swiftlinux.deploy maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: elf_info
short_description: Read link mode, dependencies and provenance facts from ELF binaries
version_added: 0.1.0
description:
  - Parses ELF executables and shared libraries on the target host with pyelftools and reports how they are linked
    (fully static, static-pie or dynamic), what they load at run time, which glibc and libstdc++ symbol versions they
    need, whether the Swift runtime is linked in or loaded from C(libswiftCore.so), and identifying data such as the
    build ID and SHA-256 digest.
  - The files are only read, never executed, so binaries built for another architecture can be inspected.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
requirements:
  - pyelftools (Python library) on the target host
attributes:
  check_mode:
    support: full
    description: The module only reads files, so check mode returns the same facts as a normal run.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  idempotent:
    support: full
    description: Running the module again on unchanged files returns the same facts and never reports a change.
options:
  path:
    description:
      - Path of one ELF file to inspect.
      - Its facts are returned both in RV(elf) and as the only item of RV(files).
      - Exactly one of O(path) and O(paths) is required.
    type: path
  paths:
    description:
      - Paths of several ELF files to inspect; RV(files) lists their facts in the same order.
      - Exactly one of O(path) and O(paths) is required.
    type: list
    elements: path
notes:
  - The module fails, naming the file, when a path does not exist, is a directory, is not an ELF file (for example a
    shell script), or is a truncated or corrupt ELF file.
  - The files are treated as untrusted. Devices, pipes and sockets are refused from their file type before they are
    opened. Header tables, sections, notes, dynamic entries and version chains that do not fit in the file, or that
    loop, give one error naming the file instead of a long or endless read.
seealso:
  - name: pyelftools
    description: The library used to parse the files.
    link: https://github.com/eliben/pyelftools
"""

EXAMPLES = r"""
- name: Check that a fully static build really has no run-time dependencies
  swiftlinux.deploy.elf_info:
    path: /srv/app/bin/server
  register: server_elf

- name: Refuse to deploy a binary that needs a loader or shared libraries
  ansible.builtin.assert:
    that:
      - server_elf.elf.linkage == 'static'
      - server_elf.elf.needed == []
    fail_msg: "{{ server_elf.elf.path }} is linked {{ server_elf.elf.linkage }} and needs {{ server_elf.elf.needed }}"

- name: Inspect every binary of a release
  swiftlinux.deploy.elf_info:
    paths:
      - /srv/app/bin/server
      - /srv/app/bin/migrate
  register: release_elf

- name: Find the newest glibc any of them needs
  ansible.builtin.set_fact:
    release_glibc: >-
      {{ release_elf.files | map(attribute='glibc_required') | select | community.general.version_sort | last | default('') }}
"""

RETURN = r"""
elf:
  description:
    - Facts about the file given in O(path); the same dictionary as the only item of RV(files).
    - See RV(files) for the keys.
  returned: when O(path) is used
  type: dict
  sample:
    path: /srv/app/bin/server
    machine: x86_64
    elf_class: 64
    endianness: little
    elf_type: DYN
    interpreter: /lib64/ld-linux-x86-64.so.2
    needed: [libswiftCore.so, libc.so.6]
    rpath: []
    runpath: [/usr/lib/swift/linux]
    soname: null
    linkage: dynamic
    glibc_required: "2.34"
    glibcxx_required: null
    cxxabi_required: null
    version_needs: {libc.so.6: [GLIBC_2.2.5, GLIBC_2.34]}
    swift_runtime: dynamic
    build_id: 545e17e9b5679481f06147675d0132db531dd648
    debuglink: null
    has_debug_info: false
    stripped: false
    sha256: 54f770a8c40f5147f034f94c393cf0db8e0e8e69a06f70b90dca267a99457b0f
    size: 16000
files:
  description: Facts about each inspected file, in the order the paths were given.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path as given.
      type: str
      returned: always
      sample: /srv/app/bin/server
    machine:
      description:
        - Target architecture, named as C(uname -m) and the Docker engine name it on a host of that architecture
          (V(x86_64), V(aarch64), V(armv7l), V(i686), V(riscv64), V(ppc64le), V(s390x) and so on).
        - Machines without a common short name are reported as pyelftools' C(EM_*) constant.
      type: str
      returned: always
      sample: aarch64
    elf_class:
      description: Word size of the file, V(32) or V(64).
      type: int
      returned: always
      sample: 64
    endianness:
      description: Byte order, V(little) or V(big).
      type: str
      returned: always
      sample: little
    elf_type:
      description: ELF file type without the C(ET_) prefix; V(EXEC) for fixed-address executables, V(DYN) for shared
        libraries and position-independent executables.
      type: str
      returned: always
      sample: DYN
    interpreter:
      description: The dynamic loader named in C(PT_INTERP), or V(null) when the file has none.
      type: str
      returned: always
      sample: /lib64/ld-linux-x86-64.so.2
    needed:
      description: Shared libraries listed as C(DT_NEEDED), in the order the loader reads them.
      type: list
      elements: str
      returned: always
      sample: [libswiftCore.so, libc.so.6]
    rpath:
      description: Directories from C(DT_RPATH), split on C(:).
      type: list
      elements: str
      returned: always
      sample: []
    runpath:
      description: Directories from C(DT_RUNPATH), split on C(:).
      type: list
      elements: str
      returned: always
      sample: [/usr/lib/swift/linux]
    soname:
      description: The C(DT_SONAME) of a shared library, or V(null).
      type: str
      returned: always
      sample: libswiftCore.so
    linkage:
      description:
        - V(static) for a fixed-address executable with no loader and no shared libraries.
        - V(static-pie) for a self-relocating position-independent executable with no loader and no shared libraries.
        - V(dynamic) for everything that needs the dynamic loader or shared libraries, including shared libraries
          themselves.
      type: str
      returned: always
      choices: [static, static-pie, dynamic]
      sample: static
    glibc_required:
      description: Highest C(GLIBC_x.y) symbol version the file needs from any library (compared numerically), or
        V(null) when it needs none.
      type: str
      returned: always
      sample: "2.34"
    glibcxx_required:
      description: Highest C(GLIBCXX_x.y.z) symbol version needed from libstdc++, or V(null).
      type: str
      returned: always
      sample: 3.4.29
    cxxabi_required:
      description: Highest C(CXXABI_x.y.z) symbol version needed from libstdc++, or V(null).
      type: str
      returned: always
      sample: 1.3.11
    version_definitions:
      description:
        - Symbol versions the file itself defines (C(.gnu.version_d)), oldest first; empty for executables.
        - A host's C(libc.so.6) defines C(GLIBC_2.36) on Debian 12, which is how a preflight learns what it offers.
      type: list
      elements: str
      returned: always
      sample: [GLIBC_2.2.5, GLIBC_2.36]
    glibc_provided:
      description: Highest C(GLIBC_x.y) version the file defines, or V(null); set for a C(libc.so.6).
      type: str
      returned: always
      sample: "2.36"
    glibcxx_provided:
      description: Highest C(GLIBCXX_x.y.z) version the file defines, or V(null); set for a C(libstdc++.so.6).
      type: str
      returned: always
      sample: 3.4.30
    version_needs:
      description: For each library named in C(.gnu.version_r), the symbol versions needed from it, oldest first.
      type: dict
      returned: always
      sample: {libc.so.6: [GLIBC_2.2.5, GLIBC_2.34]}
    swift_runtime:
      description:
        - V(dynamic) when the file loads C(libswiftCore.so).
        - V(static) when the Swift runtime is linked into the file (detected from Swift metadata sections, which
          survive stripping, or from defined Swift runtime symbols).
        - V(none) when the file contains no Swift code.
      type: str
      returned: always
      choices: [dynamic, static, none]
      sample: static
    build_id:
      description: The GNU build ID as a hex string, or V(null).
      type: str
      returned: always
      sample: 545e17e9b5679481f06147675d0132db531dd648
    debuglink:
      description: File name of the separate debug file recorded in C(.gnu_debuglink), or V(null).
      type: str
      returned: always
      sample: server.debug
    has_debug_info:
      description: Whether the file contains DWARF debug information (a C(.debug_info) section).
      type: bool
      returned: always
      sample: false
    stripped:
      description: Whether the symbol table (C(.symtab)) has been removed.
      type: bool
      returned: always
      sample: true
    sha256:
      description: SHA-256 digest of the file contents.
      type: str
      returned: always
      sample: 54f770a8c40f5147f034f94c393cf0db8e0e8e69a06f70b90dca267a99457b0f
    size:
      description: Size of the file in bytes.
      type: int
      returned: always
      sample: 16000
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import (
    HAS_ELFTOOLS,
    ElfError,
    elf_facts,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            paths=dict(type="list", elements="path"),
        ),
        mutually_exclusive=[("path", "paths")],
        required_one_of=[("path", "paths")],
        supports_check_mode=True,
    )
    if not HAS_ELFTOOLS:
        module.fail_json(msg=missing_required_lib("pyelftools", url="https://pypi.org/project/pyelftools/"))

    single = module.params["path"]
    paths = [single] if single is not None else module.params["paths"]
    files = []
    for path in paths:
        try:
            files.append(elf_facts(path))
        except ElfError as exc:
            # ElfError messages are complete sentences naming the file; a traceback adds nothing.
            # No path= key: AnsibleModule would decorate the result with that file's owner and mode.
            module.fail_json(msg=str(exc), exception="")

    result = dict(changed=False, files=files)
    if single is not None:
        result["elf"] = files[0]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
