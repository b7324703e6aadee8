# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.swiftlinux.deploy.plugins.module_utils._probe import problem


class FilterModule(object):
    def filters(self):
        return {"probe_problem": problem}
