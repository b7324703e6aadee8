# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller side of swiftlinux.deploy.release: with src, the artifact goes to the host as one tar.

A release of many files (a bag) then costs one transfer instead of a directory, a copy and a link per entry. The
artifact is untrusted input: only the files the release names are packed, each opened inside src without following a
symbolic link, and the module on the host checks every file's sha256 before the release is used.
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile

from ansible.plugins.action import ActionBase

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _manifest
from ansible_collections.swiftlinux.deploy.plugins.module_utils._manifest import ManifestError

ARCHIVE_NAME = "release.tar"


class PackError(Exception):
    """A sentence saying which file of the artifact could not be packed and what to do."""


def pack(src, names, out):
    """Write the regular files names (relative to src) into the uncompressed tar out: mode kept, owner root, mtime 0."""
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for rel in sorted(names):
            try:
                full = _manifest.contained(src, rel, "file")
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not block the play
            except ManifestError as exc:
                raise PackError("%s in the artifact %s" % (exc, src))
            except OSError as exc:
                raise PackError("file %s of the artifact %s cannot be read (%s); rebuild the artifact"
                                % (rel, src, exc.strerror or exc))
            with os.fdopen(fd, "rb") as source:
                info = os.fstat(source.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise PackError("%s in the artifact %s is not a regular file; a release holds files, "
                                    "directories and relative links only" % (rel, src))
                member = tarfile.TarInfo(rel)
                member.size, member.mode, member.mtime = info.st_size, stat.S_IMODE(info.st_mode) & 0o755, 0
                archive.addfile(member, source)


class ActionModule(ActionBase):
    # False: ActionBase would make a temporary directory on the host for every run, costing two round-trips even when
    # nothing is sent; run() makes one only for an upload.
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        src = args.pop("src", None)
        local = None
        sent = 0
        try:
            if src is not None and not self._task.check_mode:
                src = os.path.expanduser(str(src))
                if not os.path.isdir(src):
                    return dict(result, failed=True, msg="src %s is not a directory on the controller; pass the "
                                "artifact directory swift_build or shared_objects made. Nothing changed on %s."
                                % (src, task_vars.get("inventory_hostname") if task_vars else "the host"))
                files = args.get("files") or {}
                content = args.get("content") or {}
                if not isinstance(files, dict) or not isinstance(content, dict):
                    return dict(result, failed=True, msg="files and content must be mappings of relative paths; "
                                "pass the files dict swiftlinux.deploy.artifact_info returns")
                fd, local = tempfile.mkstemp(prefix="swiftlinux-release-", suffix=".tar")
                os.close(fd)
                try:
                    pack(src, [rel for rel in files if rel not in content], local)
                except PackError as exc:
                    return dict(result, failed=True, msg="%s. Nothing was sent and nothing changed on the host." % exc)
                tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
                remote = self._connection._shell.join_path(tmpdir, ARCHIVE_NAME)
                self._transfer_file(local, remote)
                sent = os.path.getsize(local)
                # Only read there: no chmod round-trip unless becoming an unprivileged user, which needs the ACLs.
                self._fixup_perms2((tmpdir, remote), execute=self._is_become_unprivileged())
                args["archive"] = remote
            result.update(self._execute_module(module_name="swiftlinux.deploy.release", module_args=args,
                                               task_vars=task_vars))
            result["uploaded_bytes"] = sent
            return result
        finally:
            if local is not None:
                os.unlink(local)
            self._remove_tmp_path(self._connection._shell.tmpdir)
