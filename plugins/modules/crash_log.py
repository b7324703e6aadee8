#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: crash_log
short_description: Read the last Swift crash of a systemd service from a host's journal
version_added: 0.1.0
description:
  - Reads the last O(lines) journal lines of a unit (C(journalctl -u UNIT -o cat)), finds the last crash report the
    Swift runtime's backtracer printed, and returns that report with the build-ids of the images it names without
    one, read from the files on the host.
  - The Swift 6.3 backtracer prints C(<no build ID>) for static executables; the build-id is read here from the
    file's notes (plain Python, no pyelftools needed on the host), so M(swiftlinux.deploy.symbolicate) can find it.
  - Pass the result to M(swiftlinux.deploy.symbolicate) on the controller.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
requirements:
  - systemd's journalctl on the host
extends_documentation_fragment:
  - swiftlinux.deploy.read_only
attributes:
  check_mode:
    support: full
    description: Only reads, so check mode returns the same as a normal run.
options:
  unit:
    description: The systemd unit, for example the O(unit=web) of a service deployed as C(web) by the service role.
    type: str
    required: true
  lines:
    description: How many of the unit's last journal lines to search; the text read is capped at 4 MiB.
    type: int
    default: 5000
notes:
  - A journal without a crash report fails with one sentence; enable the backtracer with C(SWIFT_BACKTRACE) (the
    service role does for static builds).
seealso:
  - module: swiftlinux.deploy.symbolicate
"""

EXAMPLES = r"""
- name: Read the last crash of web
  swiftlinux.deploy.crash_log:
    unit: web
  register: crash

- name: Symbolicate it on the controller
  swiftlinux.deploy.symbolicate:
    log: "{{ crash.log }}"
    build_ids: "{{ crash.build_ids }}"
    store: /srv/debug-store
  delegate_to: localhost
"""

RETURN = r"""
log:
  description: The crash report, from its C(*** Program crashed) line to the end of the journal excerpt.
  type: str
  returned: always
reason:
  description: What the backtracer said crashed the program.
  type: str
  returned: always
  sample: "Illegal instruction at 0x000000000040b690"
build_ids:
  description: Build-ids read on the host for images the report names without one, by image name.
  type: dict
  returned: always
  sample: {http-service: ff9b009e9fd71ac24fed37fa2770e7d66c28fa39}
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _backtrace, _elfnote

_UNIT = re.compile(r"^[A-Za-z0-9:_.@-]{1,255}$")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type="str", required=True),
            lines=dict(type="int", default=5000),
        ),
        supports_check_mode=True,
    )
    unit = module.params["unit"]
    if not _UNIT.match(unit) or unit.startswith("-"):
        module.fail_json(msg="unit %r is not a systemd unit name; give the service's name, e.g. web" % unit[:80])
    if not 1 <= module.params["lines"] <= 1000000:
        module.fail_json(msg="lines must be from 1 to 1000000, not %d" % module.params["lines"])
    journalctl = module.get_bin_path("journalctl", required=False)
    if not journalctl:
        module.fail_json(msg="journalctl is not on this host; crash_log reads a systemd journal, so give the log "
                             "to swiftlinux.deploy.symbolicate yourself")
    rc, out, err = module.run_command([journalctl, "--no-pager", "-o", "cat", "-u", unit,
                                       "-n", str(module.params["lines"])])
    if rc != 0:
        module.fail_json(msg="journalctl -u %s failed: %s" % (unit, (err or out).strip()[:500]))
    text = _backtrace.tail(out)
    try:
        crash = _backtrace.parse(text)
    except _backtrace.BacktraceError as exc:
        module.fail_json(msg="the journal of %s (last %d lines): %s" % (unit, module.params["lines"], exc))
    start = text.rfind("*** Program crashed")
    start = text.rfind("\n", 0, start) + 1 if start >= 0 else 0
    build_ids = {}
    for name, image in crash["images"].items():
        if not image["build_id"] and any(frame["image"] == name for frame in crash["frames"]):
            found = _elfnote.build_id(image["path"])
            if found:
                build_ids[name] = found
    module.exit_json(changed=False, log=text[start:], reason=crash["reason"], build_ids=build_ids)


if __name__ == "__main__":
    main()
