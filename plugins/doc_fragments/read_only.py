# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The diff and idempotence attributes of a module that only reads; each module still says how it runs in
    # check mode.
    DOCUMENTATION = r"""
attributes:
  diff_mode:
    support: none
    description: Changes nothing.
  idempotent:
    support: full
    description: Never reports a change.
"""
