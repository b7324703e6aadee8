# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import choose_artifact, host_fit


def _host_fit(artifact, host, install_packages=True):
    try:
        return host_fit(host, artifact, bool(install_packages))
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("host_fit needs an artifact_info answer and a host_info host, missing %s" % exc)


def _choose_artifact(candidates, host, host_name, preferred=None, fallback="smallest", install_packages=True):
    try:
        return choose_artifact(list(candidates), host, host_name, preferred or None, fallback, bool(install_packages))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("choose_artifact needs artifact_info answers with name and size, and a host_info "
                                 "host; missing %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"host_fit": _host_fit, "choose_artifact": _choose_artifact}
