#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: probe
short_description: Probe a freshly started program on the target, with its retries, in one call
version_added: 0.2.0
description:
  - Runs on the target host and tries a probe description (V(http), V(tcp), V(command) or V(none)) until it
    passes or 1 + O(probe.retries) tries have failed, O(probe.delay) seconds apart; one round-trip whatever
    the number of tries.
  - Fails with one message naming what was probed, what came back and what to check.
  - A bad description (unknown kind, port out of range, V(http) without a port, V(command) without a program,
    a path without a leading C(/), a negative retry count) fails with one sentence before anything is probed.
  - For V(none) the module only waits; the caller checks that the unit or container is still up and was not
    restarted meanwhile, or names the unit in O(unit) and lets the module check it.
  - With O(unit), the whole gate of a systemd service is this one call, because a probe can pass while the unit
    crash-loops (an answer between two restarts).
options:
  unit:
    description:
      - A systemd unit that must stay up while it is probed. Its restart count is read before the first try; after
        the last the unit must be active and not restarted meanwhile, or the module fails saying so.
      - Omit it for containers and for programs that systemd does not run.
    type: str
    version_added: 0.5.0
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
extends_documentation_fragment:
  - swiftlinux.deploy.read_only
  - swiftlinux.deploy.probe
attributes:
  check_mode:
    support: full
    description: Checks the description and returns RV(ok=true) without probing, since in check mode nothing was started.
"""

EXAMPLES = r"""
- name: Wait until the service answers its health path
  swiftlinux.deploy.probe:
    probe:
      kind: http
      port: 8080
      path: /healthz
      body: '"ok"'
      retries: 30

- name: Check a worker that listens on nothing with a command of its own
  swiftlinux.deploy.probe:
    probe:
      kind: command
      command: [/opt/worker/current/worker-ctl, status]
      timeout: 10

- name: Gate a systemd service in one call, failing when the unit crash-loops although one answer passed
  swiftlinux.deploy.probe:
    unit: my-service
    probe:
      kind: tcp
      port: 8080
"""

RETURN = r"""
ok:
  description: Whether the probe passed.
  returned: always
  type: bool
attempts:
  description: Tries made; V(0) in check mode.
  returned: always
  type: int
elapsed:
  description: Seconds spent probing.
  returned: always
  type: float
last:
  description: What the last try got back (HTTP status and body, connection error, or exit code with the output's tail), at most about 500 characters.
  returned: always
  type: str
  sample: "HTTP 503: starting"
unit_state:
  description:
    - The unit's C(ActiveState), C(SubState) and C(NRestarts) after the probe, C(restarts) during it, and
      C(ready_after), the seconds from the start of the unit's main process to the probe's pass (its start-up time
      when the unit was just started; null when systemd gives no start time).
  returned: when O(unit) is given and not in check mode
  type: dict
  sample: {"ActiveState": "active", "SubState": "running", "NRestarts": "0", "restarts": 0, "ready_after": 0.42}
summary:
  description: One line saying what was probed and how it ended.
  returned: always
  type: str
  sample: "GET http://127.0.0.1:8080/health expecting 200: passed on attempt 2 after 1.0 s (HTTP 200: ok)"
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swiftlinux.deploy.plugins.module_utils._probe import (
    PROBE_SPEC,
    ProbeError,
    describe,
    failure_message,
    parse_unit_state,
    run,
    unit_failure_message,
    validate,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(probe=dict(type="dict", required=True, options=PROBE_SPEC), unit=dict(type="str")),
        supports_check_mode=True,
    )
    try:
        probe = validate(module.params["probe"])
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    if module.check_mode:
        module.exit_json(changed=False, ok=True, attempts=0, elapsed=0.0, last="",
                         summary="%s: not probed in check mode" % describe(probe))
    unit = module.params["unit"]
    before = _unit_state(module, unit) if unit else None
    result = run(probe)
    passed_at = time.monotonic()  # the clock systemd's *TimestampMonotonic values count on
    if not result["ok"]:
        module.fail_json(msg=failure_message(probe, result), **result)
    if unit:
        state = result["unit_state"] = _unit_state(module, unit)
        state["restarts"] = int(state["NRestarts"] or 0) - int(before["NRestarts"] or 0)
        started = int(state.pop("ExecMainStartTimestampMonotonic") or 0)
        state["ready_after"] = round(passed_at - started / 1e6, 2) if started else None
        if state["ActiveState"] != "active" or state["restarts"] > 0:
            module.fail_json(msg=unit_failure_message(state, result), **result)
    module.exit_json(changed=False, **result)


def _unit_state(module, unit):
    """ActiveState, SubState, NRestarts and ExecMainStartTimestampMonotonic of a unit, as systemctl show prints them."""
    rc, out, err = module.run_command(["systemctl", "show",
                                       "--property=ActiveState,SubState,NRestarts,ExecMainStartTimestampMonotonic",
                                       "--", unit])
    if rc != 0:
        module.fail_json(msg="Could not ask systemd about unit %s (systemctl said: %s); check that systemd runs on "
                             "the host and the unit name is right." % (unit, (err or out).strip()[:200]))
    return parse_unit_state(out)


if __name__ == "__main__":
    main()
