#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release
short_description: Install a verified release directory and switch the current symlink atomically
version_added: 0.1.0
description:
  - Manages C(<root>/releases/<id>/) and the C(<root>/current) symlink on the target.
  - With O(state=present), verifies the sha256 of every file of an uploaded staging directory, moves it to
    C(releases/<id>) in one rename, points C(current) at it with an atomic rename of a new symlink, and
    removes all but the newest O(keep) releases (never the current or previous one).
  - With O(state=rollback), points C(current) back at O(previous_id).
  - A release that fails verification never becomes current; the staging directory is removed and the
    release that was current stays current.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
attributes:
  check_mode:
    support: full
    description: Reports what would change; touches nothing.
  diff_mode:
    support: full
    description: Shows the release C(current) points at before and after.
  idempotent:
    support: full
    description: An installed, verified release that is already current gives C(changed=false).
options:
  root:
    description: The service's directory, for example C(/opt/api).
    type: path
    required: true
  release_id:
    description: Id of the release to install; letters, digits, C(.), C(_) and C(-) only.
    type: str
    required: true
  staging:
    description:
      - Directory on the target holding the uploaded files of the release.
      - Needed only when C(releases/<id>) does not exist yet.
    type: path
  files:
    description: Relative path to sha256 of every regular file the release must contain.
    type: dict
    default: {}
  state:
    description: V(present) installs and switches; V(rollback) switches back to O(previous_id).
    type: str
    choices: [present, rollback]
    default: present
  previous_id:
    description: The release to switch back to with O(state=rollback).
    type: str
  keep:
    description: How many releases to keep, the current one included.
    type: int
    default: 3
"""

EXAMPLES = r"""
- name: Install and switch to the uploaded release
  swiftlinux.deploy.release:
    root: /opt/api
    release_id: "{{ artifact.release_id }}"
    staging: /opt/api/releases/.staging
    files: "{{ artifact.files }}"
  register: api_release

- name: Go back to the release that served before
  swiftlinux.deploy.release:
    root: /opt/api
    release_id: "{{ artifact.release_id }}"
    state: rollback
    previous_id: "{{ api_release.previous_id }}"
"""

RETURN = r"""
release_id:
  description: The release C(current) points at afterwards.
  returned: always
  type: str
previous_id:
  description: The release C(current) pointed at before, or null on a first install.
  returned: always
  type: str
path:
  description: Directory of the current release.
  returned: always
  type: str
  sample: /opt/api/releases/3f2c9a0d41b7e815
pruned:
  description: Release ids removed to honour O(keep).
  returned: always
  type: list
  elements: str
"""

import os
import re
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import sha256_file

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _mismatches(directory, files):
    bad = []
    for rel, expected in sorted(files.items()):
        full = os.path.join(directory, rel)
        if not os.path.isfile(full):
            bad.append("%s (missing)" % rel)
        elif sha256_file(full) != expected:
            bad.append("%s (checksum mismatch)" % rel)
    return bad


def _current_id(root):
    link = os.path.join(root, "current")
    if not os.path.islink(link):
        return None
    return os.path.basename(os.readlink(link).rstrip("/"))


def _switch(root, release_id):
    """Point current at releases/<id> by renaming a fresh symlink over it: readers never see no link."""
    link = os.path.join(root, "current")
    tmp = link + ".new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join("releases", release_id), tmp)
    os.replace(tmp, link)


def _prune(root, keep, protect):
    releases = os.path.join(root, "releases")
    ids = [d for d in os.listdir(releases) if not d.startswith(".") and os.path.isdir(os.path.join(releases, d))]
    ids.sort(key=lambda d: os.path.getmtime(os.path.join(releases, d)), reverse=True)
    doomed = [d for d in ids[max(keep, 1):] if d not in protect]
    for release_id in doomed:
        shutil.rmtree(os.path.join(releases, release_id))
    return doomed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            release_id=dict(type="str", required=True),
            staging=dict(type="path"),
            files=dict(type="dict", default={}),
            state=dict(type="str", default="present", choices=["present", "rollback"]),
            previous_id=dict(type="str"),
            keep=dict(type="int", default=3),
        ),
        required_if=[("state", "rollback", ("previous_id",))],
        supports_check_mode=True,
    )
    p = module.params
    root, release_id = p["root"], p["release_id"]
    for name in ("release_id", "previous_id"):
        if p[name] is not None and not _ID.match(p[name]):
            module.fail_json(msg="%s %r may hold only letters, digits, '.', '_' and '-'" % (name, p[name]))
    releases = os.path.join(root, "releases")
    before = _current_id(root)
    target = release_id if p["state"] == "present" else p["previous_id"]
    final = os.path.join(releases, target)
    result = dict(changed=False, release_id=target, previous_id=before, path=final, pruned=[],
                  diff=dict(before="current -> %s\n" % before, after="current -> %s\n" % target))

    if p["state"] == "rollback":
        if not os.path.isdir(final):
            module.fail_json(msg="cannot roll back to release %s: %s does not exist" % (target, final), **result)
        result["changed"] = before != target
        if result["changed"] and not module.check_mode:
            _switch(root, target)
        module.exit_json(**result)

    install = not os.path.isdir(final)
    if install:
        staging = p["staging"]
        if module.check_mode and not (staging and os.path.isdir(staging)):
            result["changed"] = True  # in check mode the upload before this did not happen
            module.exit_json(**result)
        if not staging or not os.path.isdir(staging):
            module.fail_json(msg="release %s is not installed under %s and no uploaded staging directory was given; "
                                 "upload the artifact first" % (release_id, releases), **result)
        bad = _mismatches(staging, p["files"])
        if bad:
            if not module.check_mode:
                shutil.rmtree(staging, ignore_errors=True)
            module.fail_json(msg="release %s failed verification (%s); current release %s left in place, re-upload the "
                                 "artifact" % (release_id, ", ".join(bad), before), **result)
    else:
        bad = _mismatches(final, p["files"])
        if bad:
            module.fail_json(msg="installed release %s is damaged (%s); remove %s and deploy again"
                                 % (release_id, ", ".join(bad), final), **result)
    result["changed"] = install or before != release_id
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    try:
        if install:
            os.rename(p["staging"], final)
        _switch(root, release_id)
        result["pruned"] = _prune(root, p["keep"], {release_id, before})
    except OSError as exc:
        module.fail_json(msg="could not switch %s to release %s: %s; release %s is still current"
                             % (root, release_id, exc, _current_id(root)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
