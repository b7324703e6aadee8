# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller side of swiftlinux.deploy.artifact_info: on the local connection, describe in this process.

A module run costs a Python process with its own imports, about a second on a small controller, and the service role
describes the artifact for every host it deploys to. On the local connection the description is the same code on the
same files, so it runs here; any other connection runs the module on the target, where the artifact then is.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.swiftlinux.deploy.plugins.module_utils._artifact import ARGUMENT_SPEC, describe_or_error


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        if self._connection.transport != "local":
            result.update(self._execute_module(module_name="swiftlinux.deploy.artifact_info",
                                               module_args=self._task.args, task_vars=task_vars))
            return result
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        info, error = describe_or_error(args["path"], args["executable"], args["include_debug_info"])
        if error:
            return dict(result, failed=True, msg=error)
        return dict(result, changed=False, **info)
