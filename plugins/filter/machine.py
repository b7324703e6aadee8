# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: machine
short_description: Name a machine architecture the way one tool names it, from any other tool's name
version_added: 0.1.0
description:
  - Looks a machine up in the collection's one machine table (C(module_utils/_policy.py)) by any of its names, as
    C(uname -m), the Docker engine, OCI image configs, Debian or RV(swiftlinux.deploy.elf_info#module:files[].machine)
    give it, and returns the name O(field) asks for.
  - Two names are the same machine exactly when this filter gives the same V(name) for both, so compare through it.
positional: field
options:
  _input:
    description: A machine name, for example V(amd64), V(linux/arm/v7), V(armhf), V(i386) or V(x86_64).
    type: str
    required: true
  field:
    description:
      - V(name) is the collection's name, what C(uname -m) prints on that machine (V(x86_64), V(armv7l), V(i686)).
      - V(oci) is the OCI platform architecture, V(oci_platform) the full platform such as V(linux/arm/v7).
      - V(debian) is the Debian architecture, V(multiarch) Debian's library directory triplet.
      - V(loader) is glibc's dynamic loader path, V(ldconfig) the tag C(ldconfig -p) prints for native libraries.
    type: str
    default: name
    choices: [name, oci, oci_platform, debian, multiarch, loader, ldconfig]
"""

EXAMPLES = r"""
- name: Refuse an image built for another architecture than the Docker host's
  ansible.builtin.assert:
    that: (image.architecture | swiftlinux.deploy.machine) == (engine.host_info.Architecture | swiftlinux.deploy.machine)

- name: Prefer the host's native libraries in the ldconfig cache
  ansible.builtin.set_fact:
    libraries: "{{ ldconfig.stdout | swiftlinux.deploy.ldconfig_cache(uname.stdout | trim | swiftlinux.deploy.machine('ldconfig')) }}"
"""

RETURN = r"""
_value:
  description:
    - The requested name. For V(name), an unknown machine comes back as given; for other fields an unknown machine,
      or one without such a name, gives V(null).
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import (
    canonical_machine,
    machine_named,
    oci_platform,
)

_FIELDS = ("name", "oci", "oci_platform", "debian", "multiarch", "loader", "ldconfig")


def machine(name, field="name"):
    if field not in _FIELDS:
        raise AnsibleFilterError("swiftlinux.deploy.machine: field %r is not one of %s" % (field, ", ".join(_FIELDS)))
    if field == "name":
        return canonical_machine(name)
    if field == "oci_platform":
        return oci_platform(name)
    row = machine_named(name)
    return getattr(row, field) if row else None


class FilterModule(object):
    def filters(self):
        return {"machine": machine}
