# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: ldconfig_cache
short_description: Turn C(ldconfig -p) output into a mapping of SONAME to path
version_added: 0.1.0
description:
  - Parses the library cache listing printed by C(ldconfig -p) on a host.
  - When a SONAME is listed for several ABIs, the one matching O(abi) wins; otherwise the first listed.
positional: abi
options:
  _input:
    description: The text printed by C(ldconfig -p).
    type: str
    required: true
  abi:
    description: The ABI tag to prefer, as C(ldconfig) prints it, for example C(x86-64) or C(AArch64).
    type: str
"""

EXAMPLES = r"""
- name: Find the host's libstdc++
  ansible.builtin.set_fact:
    host_libstdcxx: "{{ (ldconfig.stdout | swiftlinux.deploy.ldconfig_cache('x86-64'))['libstdc++.so.6'] | default(none) }}"
"""

RETURN = r"""
_value:
  description: SONAME to absolute path.
  type: dict
"""

from ansible_collections.swiftlinux.deploy.plugins.module_utils._host import ldconfig_cache


class FilterModule(object):
    def filters(self):
        return {"ldconfig_cache": ldconfig_cache}
