#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: symbolicate
short_description: Turn a Swift crash log into frames with function, file and line, from a debug store
version_added: 0.1.0
description:
  - Reads the last crash that the Swift runtime's backtracer printed in a log (a journal excerpt, a container log,
    or a file), finds each image the crashed thread's frames point into by its GNU build-id in a debug store
    written by M(swiftlinux.deploy.debug_store) (a folder, or a debuginfod server's URL), and returns every frame
    with its function, source file and line.
  - Addresses are made relative to their image with the image ranges of the backtrace's C(Images) section, so
    executables, position-independent executables and shared libraries of a bag all resolve, each through its
    own build-id.
  - Uses the toolchain's C(llvm-symbolizer) (or binutils' C(addr2line)) and C(swift-demangle).
  - The log is untrusted input; only its last 4 MiB are read, and build-ids and addresses are checked before use.
  - Runs where the store and the toolchain are, usually the controller.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
requirements:
  - pyelftools
  - a Swift toolchain (llvm-symbolizer, swift-demangle) or binutils (addr2line)
extends_documentation_fragment:
  - swiftlinux.deploy.read_only
attributes:
  check_mode:
    support: full
    description: Only reads, so check mode symbolicates as a normal run does.
options:
  log:
    description:
      - The log text holding the crash, for example the output of C(journalctl -u NAME) or C(docker logs NAME).
        Journal and timestamp prefixes before each line are recognised.
      - Exactly one of O(log) and O(log_path) is required.
    type: str
  log_path:
    description: A file holding the log, on the machine the module runs on.
    type: path
  store:
    description:
      - A debug store folder (with C(buildid/) inside), or the C(http://) or C(https://) URL of a debuginfod server
        that serves one.
    type: str
    required: true
  build_ids:
    description:
      - Build-ids of images the backtrace prints without one, by image name or path. The Swift 6.3 backtracer
        prints C(<no build ID>) for static executables;
        M(swiftlinux.deploy.crash_log) reads them on the host, M(swiftlinux.deploy.elf_info) from the artifact.
    type: dict
    default: {}
  symbolizer:
    description: Which program resolves addresses; V(auto) prefers C(llvm-symbolizer).
    type: str
    choices: [auto, llvm-symbolizer, addr2line]
    default: auto
  allow_missing:
    description:
      - Return frames of images that cannot be found in the store without function and line, instead of failing.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for a debuginfod server.
    type: int
    default: 30
notes:
  - A log without a backtrace, an image whose build-id is not in the store, a store path that is not a store and
    a truncated or non-ELF debug file each stop the module with one sentence saying what to do.
seealso:
  - module: swiftlinux.deploy.debug_store
  - module: swiftlinux.deploy.crash_log
"""

EXAMPLES = r"""
- name: Read the last crash of the service on the host
  swiftlinux.deploy.crash_log:
    unit: my-server
  register: crash

- name: Symbolicate it against the build host's store
  swiftlinux.deploy.symbolicate:
    log: "{{ crash.log }}"
    build_ids: "{{ crash.build_ids }}"
    store: /srv/debug-store
  delegate_to: localhost
  register: trace

- name: Or against a debuginfod server
  swiftlinux.deploy.symbolicate:
    log_path: /tmp/container.log
    store: http://127.0.0.1:8002
  delegate_to: localhost
"""

RETURN = r"""
reason:
  description: What the backtracer said crashed the program.
  type: str
  returned: always
  sample: "Illegal instruction at 0x000000000040b690"
thread:
  description: Index and name of the crashed thread.
  type: dict
  returned: always
  sample: {index: 0, name: http-service}
frames:
  description:
    - The crashed thread's frames, innermost first. A frame the compiler inlined comes before the frame it was
      inlined into, with the same V(index) and V(inlined=true).
  type: list
  elements: dict
  returned: always
  contains:
    index:
      description: The frame's number in the backtrace.
      type: int
    address:
      description: The address the backtracer printed.
      type: str
      sample: "0x40b690"
    image:
      description: The executable or library the address lies in.
      type: str
      sample: http-service
    build_id:
      description: The image's build-id, or V(null) when it could not be found (O(allow_missing)).
      type: str
    offset:
      description: The address in the image's own terms, as given to the symbolizer.
      type: str
      sample: "0x40b690"
    function:
      description: The demangled function name, or V(null).
      type: str
      sample: crashOnPurpose()
    mangled:
      description: The function's symbol as the symbolizer returned it.
      type: str
      sample: $s12http_service14crashOnPurposeSiyF
    file:
      description: The source file, or V(null).
      type: str
      sample: /src/http-service/Sources/http-service/Crash.swift
    line:
      description: The source line, or V(null).
      type: int
      sample: 31
    column:
      description: The source column, or V(null).
      type: int
    inlined:
      description: Whether this function was inlined into the next entry of the same V(index).
      type: bool
backtrace:
  description: The frames as text, one line each, for people.
  type: list
  elements: str
  returned: always
  sample: ["Crashed: Illegal instruction at 0x000000000040b690", "#0   crashOnPurpose() at /src/Crash.swift:31 (http-service+0x40b690)"]
images:
  description: The images the frames point into, with the build-id and debug file used for each.
  type: dict
  returned: always
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _backtrace, _swift, _symbolize
from ansible_collections.swiftlinux.deploy.plugins.module_utils._debugstore import StoreError
from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import HAS_ELFTOOLS


def _read_log(module):
    if module.params["log"] is not None:
        return module.params["log"]
    path = module.params["log_path"]
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - _backtrace.MAX_LOG_BYTES))
            return handle.read(_backtrace.MAX_LOG_BYTES).decode("utf-8", "replace")
    except OSError as exc:
        module.fail_json(msg="cannot read log_path %s: %s; give the file holding the crash log"
                         % (path, exc.strerror or exc))
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            log=dict(type="str"),
            log_path=dict(type="path"),
            store=dict(type="str", required=True),
            build_ids=dict(type="dict", default={}),
            symbolizer=dict(type="str", default="auto", choices=["auto", "llvm-symbolizer", "addr2line"]),
            allow_missing=dict(type="bool", default=False),
            timeout=dict(type="int", default=30),
        ),
        mutually_exclusive=[("log", "log_path")],
        required_one_of=[("log", "log_path")],
        supports_check_mode=True,
    )
    if not HAS_ELFTOOLS:
        module.fail_json(msg=missing_required_lib("pyelftools", url="https://pypi.org/project/pyelftools/"))
    params = module.params
    workdir = tempfile.mkdtemp(prefix="symbolicate-", dir=module.tmpdir)

    def run(cmd, data=None):
        return module.run_command(cmd, data=data)

    try:
        crash = _backtrace.parse(_read_log(module))
        store = _symbolize.Store(params["store"], workdir, params["timeout"])
        tools = _symbolize.find_tools(_swift.toolchain_dirs(), params["symbolizer"])
        frames = _symbolize.symbolicate(crash, store, {str(k): str(v) for k, v in params["build_ids"].items()},
                                        tools, run, params["allow_missing"])
    except (_backtrace.BacktraceError, StoreError) as exc:
        module.fail_json(msg=str(exc))
    finally:
        _symbolize.cleanup(workdir)
    images = {name: dict(image, start="0x%x" % image["start"], end="0x%x" % image["end"])
              for name, image in crash["images"].items() if any(f["image"] == name for f in frames)}
    module.exit_json(changed=False, reason=crash["reason"], thread=crash["thread"], frames=frames,
                     backtrace=_symbolize.render(crash, frames), images=images)


if __name__ == "__main__":
    main()
