#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_info
short_description: Learn in one call what a Linux host offers a Swift program
version_added: 0.2.0
description:
  - Runs on the target and reads, in one round-trip, everything a preflight needs to decide whether a build can
    run there, namely the machine architecture, glibc version, the highest C(GLIBCXX_) version its C(libstdc++.so.6)
    defines, systemd's version and state, the shared library cache, and optionally whether a TCP port is taken
    and whether a systemd unit is active.
  - The C(GLIBCXX_) versions are read on the host from the library's version names, so the library is never
    copied to the controller.
  - Optionally waits until systemd has finished booting (C(systemctl is-system-running --wait)) first, as a
    freshly started host needs.
  - Changes nothing on the host.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
options:
  wait_for_systemd:
    description:
      - Wait until systemd reports V(running) or V(degraded) before reading. Fails when the host has no
        C(systemctl), or when systemd reaches another state or O(wait_timeout) passes.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for systemd to finish booting.
    type: int
    default: 120
  port:
    description:
      - A TCP port to check; RV(host.port_in_use) says whether something accepts connections on it at
        O(port_host).
    type: int
  port_host:
    description: The address O(port) is checked on.
    type: str
    default: 127.0.0.1
  unit:
    description:
      - A systemd unit whose state to report in RV(host.unit_state) and RV(host.unit_file_state), for example the
        service that may already hold O(port).
    type: str
  user:
    description:
      - A user to look up; RV(host.user) gives its uid, primary group, home and shell, so that a caller can skip
        creating a user that is already as it should be.
    type: str
    version_added: 0.5.0
  paths:
    description:
      - Absolute paths to look at, each answered in RV(host.paths), so that a caller learns for example which
        releases are already on the host without a round-trip of its own.
    type: list
    elements: path
    default: []
    version_added: 0.5.0
  probe:
    description:
      - A probe description, as M(swiftlinux.deploy.probe) takes it, tried once (no retries) when O(unit) is active,
        or whenever no O(unit) is given (a container, say), so that a caller whose run changes nothing learns in this
        call that the running program still answers, and can skip its own gate. RV(host.probe) gives the answer.
      - It is not tried in check mode, nor for kind V(none), whose check is the unit staying up over time.
      - A V(command) probe runs its command on the host, as M(swiftlinux.deploy.probe) would.
    type: dict
    required: false
    version_added: 0.6.0
  checksums:
    description:
      - Absolute paths of files whose sha256 to read, each answered in RV(host.checksums), so that a caller can tell
        that the files it would install are already there, intact, without a round-trip of its own. Links on the
        way are followed, the last component is not.
    type: list
    elements: path
    default: []
    version_added: 0.6.0
extends_documentation_fragment:
  - swiftlinux.deploy.read_only
  - swiftlinux.deploy.probe
attributes:
  check_mode:
    support: full
    description: Reads only, so it runs in check mode as it does otherwise.
notes:
  - The O(port) check connects to the port; a program that accepts and closes the connection sees one
    connection.
seealso:
  - name: The host_facts role
    description: Runs this module and saves the answer as the local fact C(ansible_local.swiftlinux).
    link: https://github.com/swiftlinux/deploy/tree/main/roles/host_facts
"""

EXAMPLES = r"""
- name: Learn what the host offers, after systemd has booted
  swiftlinux.deploy.host_info:
    wait_for_systemd: true
  register: found

- name: Refuse a host whose glibc is too old for a static_stdlib build
  ansible.builtin.assert:
    that: found.host.glibc_version is version('2.35', '>=')
    fail_msg: "{{ inventory_hostname }} has glibc {{ found.host.glibc_version }}; deploy a static_executable build"

- name: Check that port 8080 is free unless myservice holds it
  swiftlinux.deploy.host_info:
    port: 8080
    unit: myservice.service
  register: port_check
"""

RETURN = r"""
host:
  description: What the host offers.
  returned: always
  type: dict
  contains:
    architecture:
      description: The machine as C(uname -m) prints it.
      type: str
      sample: x86_64
    glibc_version:
      description: glibc's version, or V(null) when the C library is not glibc.
      type: str
      sample: "2.36"
    glibcxx_version:
      description: The highest C(GLIBCXX_) version the host's C(libstdc++.so.6) defines, or V(null) without one.
      type: str
      sample: "3.4.30"
    libstdcxx_path:
      description: The file C(libstdc++.so.6) resolves to, or V(null).
      type: str
      sample: /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30
    systemd_version:
      description: systemd's version number, or V(null) without C(systemctl).
      type: int
      sample: 252
    systemd_state:
      description: What C(systemctl is-system-running) printed, or V(null) without C(systemctl).
      type: str
      sample: running
    libraries:
      description: The shared library cache, SONAME to path, preferring the native ABI.
      type: dict
      sample: {"libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6"}
    port_in_use:
      description: Whether something accepts connections on O(port_host):O(port); V(null) without O(port).
      type: bool
    unit_state:
      description: What C(systemctl is-active) printed for O(unit) (V(active), V(inactive), V(failed), ...); V(null) without O(unit).
      type: str
      sample: active
    shell:
      description: Whether C(/bin/sh) exists and can be run (a bag's launcher needs it).
      type: bool
      version_added: 0.5.0
    unit_file_state:
      description: What C(systemctl is-enabled) printed for O(unit) (V(enabled), V(disabled), V(not-found), ...); V(null) without O(unit).
      type: str
      sample: enabled
    user:
      description: O(user)'s C(uid), primary C(group) name, C(home) and C(shell), or V(null) when there is no such user or no O(user).
      type: dict
      sample: {"uid": 998, "group": "my-service", "home": "/opt/my-service", "shell": "/usr/sbin/nologin"}
    paths:
      description:
        - Each of O(paths), V(null) when nothing is there, else its C(type) (V(directory), V(file), V(link), V(socket)
          or V(other)); a link is not followed but its C(target) is given, and a directory lists the sorted names of
          at most 256 C(entries) (C(truncated) says whether there were more).
      type: dict
      sample: {"/opt/my-service/releases": {"type": "directory", "entries": ["3f2a9c0d1e2b4a5c"], "truncated": false}}
    probe:
      description:
        - What trying O(probe) once gave, with C(ok), C(last) (what came back) and C(summary) as
          M(swiftlinux.deploy.probe) returns them; V(null) when it was not tried (no O(probe), O(unit) given but not
          active, kind V(none), or check mode).
      type: dict
      sample: {"ok": true, "last": "HTTP 200: ok", "summary": "GET http://127.0.0.1:8080/health expecting 200: passed on attempt 1 after 0.0 s (HTTP 200: ok)"}
      version_added: 0.6.0
    checksums:
      description: The hex sha256 of each of O(checksums), or V(null) where there is no regular file (missing, a link,
        a directory, a special file, or unreadable).
      type: dict
      sample: {"/opt/my-service/current/my-service": "7e4c4022277efe1ab67271c52dc989465eb1f54668a37bae65735668ea3fe03a"}
      version_added: 0.6.0
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swiftlinux.deploy.plugins.module_utils._host import (
    file_sha256,
    glibc_version,
    highest_glibcxx,
    native_libraries,
    path_info,
    port_in_use,
    user_info,
)
from ansible_collections.swiftlinux.deploy.plugins.module_utils._probe import PROBE_SPEC, ProbeError, run, validate


def _systemctl(module, *args, timeout=None):
    systemctl = module.get_bin_path("systemctl")
    if systemctl is None:
        return None, ""
    command = [systemctl] + list(args)
    if timeout is not None:
        command = [module.get_bin_path("timeout", required=True), str(timeout)] + command
    rc, out, dummy = module.run_command(command)
    return rc, out.strip()


def _wait_for_boot(module):
    rc, state = _systemctl(module, "is-system-running", "--wait", timeout=module.params["wait_timeout"])
    if rc is None:
        module.fail_json(msg="%s has no systemctl, so there is no systemd to wait for; set wait_for_systemd to false "
                             "for a host without systemd." % os.uname()[1])
    if state not in ("running", "degraded"):
        module.fail_json(msg="systemd on %s did not finish booting within %d s (it says %r); look at "
                             "'systemctl --failed' there, or raise wait_timeout."
                             % (os.uname()[1], module.params["wait_timeout"], state or "nothing"))
    return state


def main():
    module = AnsibleModule(
        argument_spec=dict(
            wait_for_systemd=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=120),
            port=dict(type="int"),
            port_host=dict(type="str", default="127.0.0.1"),
            unit=dict(type="str"),
            user=dict(type="str"),
            paths=dict(type="list", elements="path", default=[]),
            checksums=dict(type="list", elements="path", default=[]),
            probe=dict(type="dict", options=PROBE_SPEC),
        ),
        supports_check_mode=True,
    )
    port = module.params["port"]
    if port is not None and not 1 <= port <= 65535:
        module.fail_json(msg="port %d is out of range; give a TCP port from 1 to 65535." % port)
    for option in ("paths", "checksums"):
        relative = [path for path in module.params[option] if not os.path.isabs(path)]
        if relative:
            module.fail_json(msg="%s must be absolute; %s is not." % (option, relative[0]))
    if module.params["wait_timeout"] < 1:
        module.fail_json(msg="wait_timeout must be at least 1 second.")
    try:
        probe = validate(module.params["probe"]) if module.params["probe"] is not None else None
    except ProbeError as exc:
        module.fail_json(msg=str(exc))

    state = _wait_for_boot(module) if module.params["wait_for_systemd"] else None
    machine = os.uname()[4]
    ldconfig = module.get_bin_path("ldconfig", opt_dirs=["/sbin", "/usr/sbin"])
    libraries = native_libraries(module.run_command([ldconfig, "-p"])[1], machine) if ldconfig else {}
    libstdcxx = libraries.get("libstdc++.so.6")
    libstdcxx = os.path.realpath(libstdcxx) if libstdcxx else None
    try:
        glibcxx = highest_glibcxx(libstdcxx) if libstdcxx else None
    except OSError as exc:
        module.fail_json(msg="could not read %s to learn its GLIBCXX versions: %s" % (libstdcxx, exc.strerror))

    rc, version = _systemctl(module, "--version")  # "systemd 252 (252.30-1~deb12u2)"
    words = version.split()
    systemd_version = int(words[1]) if rc == 0 and len(words) > 1 and words[1].isdigit() else None
    if state is None and rc is not None:
        state = _systemctl(module, "is-system-running")[1] or None
    unit_state = unit_file_state = None
    if module.params["unit"] and rc is not None:
        unit_state = _systemctl(module, "is-active", "--", module.params["unit"])[1] or None
        unit_file_state = _systemctl(module, "is-enabled", "--", module.params["unit"])[1] or None
    try:
        in_use = port_in_use(module.params["port_host"], port) if port is not None else None
    except (OSError, ValueError) as exc:
        module.fail_json(msg="could not check port %s on %s: %s; give port_host as an IP address of this host."
                             % (port, module.params["port_host"], exc))

    tried = None
    unit_up = module.params["unit"] is None or unit_state == "active"
    if probe is not None and probe["kind"] != "none" and unit_up and not module.check_mode:
        answer = run(dict(probe, retries=0))
        tried = dict(ok=answer["ok"], last=answer["last"], summary=answer["summary"])

    module.exit_json(changed=False, host=dict(
        architecture=machine,
        glibc_version=glibc_version(),
        glibcxx_version=glibcxx,
        libstdcxx_path=libstdcxx,
        systemd_version=systemd_version,
        systemd_state=state,
        libraries=libraries,
        port_in_use=in_use,
        unit_state=unit_state,
        unit_file_state=unit_file_state,
        shell=os.path.isfile("/bin/sh") and os.access("/bin/sh", os.X_OK),
        user=user_info(module.params["user"]) if module.params["user"] else None,
        paths=dict((path, path_info(path)) for path in module.params["paths"]),
        checksums=dict((path, file_sha256(path)) for path in module.params["checksums"]),
        probe=tried,
    ))


if __name__ == "__main__":
    main()
