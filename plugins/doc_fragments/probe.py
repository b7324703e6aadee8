# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The probe description shared by the service and container roles and the probe module.
    DOCUMENTATION = r"""
options:
  probe:
    description:
      - What tells that a freshly started program works; plain data, the same in every role.
      - Nothing in it has a default that assumes a program's flags or endpoints.
    type: dict
    required: true
    suboptions:
      kind:
        description:
          - V(http) sends C(GET http://<host>:<port><path>) and expects O(probe.status) and, when given, a body
            matching O(probe.body).
          - V(tcp) connects to O(probe.host) and O(probe.port).
          - V(command) runs O(probe.command) without a shell and expects exit code 0.
          - V(none) only waits O(probe.seconds); the caller checks that the process is still up and was not restarted.
        type: str
        required: true
        choices: [http, tcp, command, none]
      host:
        description: Address to probe (V(http), V(tcp)).
        type: str
        default: 127.0.0.1
      port:
        description: Port to probe, 1 to 65535; required for V(http) and V(tcp).
        type: int
      path:
        description: URL path for V(http); starts with C(/).
        type: str
        default: /
      status:
        description: HTTP status that counts as healthy.
        type: int
        default: 200
      body:
        description: Regular expression the HTTP body must match (Python C(re.search)); not checked when omitted.
        type: str
      command:
        description: Program and arguments for V(command), run on the host without a shell.
        type: list
        elements: str
      seconds:
        description: For V(none), how long the process must stay up.
        type: float
        default: 5
      retries:
        description: Tries after the first failed one; V(0) probes once.
        type: int
        default: 20
      delay:
        description: Seconds between tries.
        type: float
        default: 1
      timeout:
        description: Seconds one try may take.
        type: float
        default: 5
"""
