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
  - A release comes from the controller with O(src) (one tar, one transfer), from an OCI registry with O(pull), or
    from a staging directory uploaded before with O(staging). Installing one creates C(<root>) and
    C(<root>/releases) when they are missing and keeps them owned by root with mode 0755.
  - With O(state=present), verifies the sha256 of every file of an uploaded staging directory, moves it to
    C(releases/<id>) in one rename, points C(current) at it with an atomic rename of a new symlink, and
    removes all but the newest O(keep) releases (never the current or previous one).
  - With O(state=rollback), points C(current) back at O(previous_id).
  - A release that fails verification never becomes current; the staging directory is removed and the
    release that was current stays current. Every failure message says which release is current afterwards.
  - Runs on the target host and trusts nothing the controller sends about paths. Every key of O(files) must be a
    relative path inside the release (no C(..), not absolute), checked before any file is opened, so the module
    cannot be asked for the checksum of another file on the host. Files must be regular files; a symlink, FIFO,
    socket or device where a file is expected fails verification, and symlinks in the release must be relative and
    stay inside it.
  - Parallel runs on one O(root) take turns through an exclusive C(flock) on C(<root>/.swiftlinux-release.lock).
  - A C(current) that is a directory or file rather than a symlink is never replaced; the run fails and changes
    nothing.
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
      - "It must be a real directory (not a symlink) directly in C(<root>/releases) whose name starts with
        C(.staging), for example C(<root>/releases/.staging-<id>): only such a dedicated upload directory is renamed
        into place, or removed when it fails verification. Any other path, O(root) itself, C(releases) or C(current)
        included, is refused and left untouched."
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
    description: How many releases to keep, the current one included; at least 1.
    type: int
    default: 3
  pull:
    description:
      - Install the release from an OCI registry instead of an uploaded staging directory, when C(releases/<id>)
        does not exist yet. The host fetches the artifact M(swiftlinux.deploy.release_push) pushed, by digest,
        checks every blob's digest, keeps the blobs in a content-addressed cache (so a code-only release fetches
        only the program layer), and extracts it into C(releases/.staging-<id>) without Docker; then O(files) are
        verified as for an upload.
      - A layer may hold only directories, regular files and relative symbolic links inside the release; anything
        else fails before the release is used.
    type: dict
    version_added: 0.5.0
    suboptions:
      reference:
        description: V(host[:port]/repository@sha256:<digest>), as M(swiftlinux.deploy.release_push) returns it.
        type: str
        required: true
      username:
        description: User name for the registry.
        type: str
      password:
        description: Password or token for the registry; sent only to the registry's own scheme, host and port.
        type: str
      insecure:
        description: Talk plain HTTP to the registry (loopback registries always do).
        type: bool
        default: false
      cache:
        description: The host's blob cache; blobs of releases that were pruned are removed from it.
        type: path
  src:
    description:
      - Directory on the controller holding the artifact, uploaded when C(releases/<id>) does not exist yet.
      - The action plugin packs every file of O(files) that is not in O(content) into one uncompressed tar, read
        from inside O(src) only (a file must be a regular file there, not a symbolic link), sends it to the host in
        one transfer, and the module extracts it into C(releases/.staging-<id>) as for O(pull). So a release costs
        the same few round-trips whatever its number of files.
      - Leave it out when the host already holds the release (M(swiftlinux.deploy.host_info) lists them), and
        nothing is sent.
    type: path
    version_added: 0.6.0
  archive:
    description:
      - A tar on the host holding the release's files, which the action plugin uploaded from O(src); set by the
        action plugin, not by hand. It is read, never removed (it lies in Ansible's temporary directory).
      - It may hold only directories, regular files and relative symbolic links inside the release.
    type: path
    version_added: 0.6.0
  content:
    description:
      - Text files to add to a release installed with O(src) or O(pull), relative path to text, for example the
        configuration that belongs to the release; written with mode 0600 before O(files) are verified.
      - Not logged, since a service's environment may hold secrets.
    type: dict
    default: {}
    version_added: 0.5.0
  links:
    description:
      - Symbolic links to add to a release installed with O(src) or O(pull), relative path to a relative target
        inside the release, for example the entry point the service's unit starts, or a bag's library links.
    type: dict
    default: {}
    version_added: 0.5.0
"""

EXAMPLES = r"""
- name: Upload the artifact in one transfer, verify it and switch to it
  swiftlinux.deploy.release:
    root: /opt/api
    release_id: "{{ artifact.release_id }}"
    src: /srv/build/api-static_executable
    files: "{{ artifact.files }}"
    links: "{{ artifact.links }}"
  register: api_release

- name: Install and switch to a release uploaded into a staging directory
  swiftlinux.deploy.release:
    root: /opt/api
    release_id: "{{ artifact.release_id }}"
    staging: /opt/api/releases/.staging-{{ artifact.release_id }}
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
uploaded_bytes:
  description: Bytes the controller sent with O(src) (the tar of the release's files); V(0) when nothing was sent.
  returned: always
  type: int
  version_added: 0.6.0
fetched_bytes:
  description: Bytes fetched from the registry with O(pull); V(0) when the host had every blob or the release.
  returned: always
  type: int
layers:
  description: With O(pull), each layer's role, digest, size and whether it was C(fetched) or found in the cache.
  returned: when a release was pulled
  type: list
  elements: dict
"""

import errno
import fcntl
import os
import re
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _manifest, _release_oci
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import sha256_file
from ansible_collections.swiftlinux.deploy.plugins.module_utils._manifest import ManifestError
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import OciError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
STAGING_PREFIX = ".staging"
LOCK_FILE = ".swiftlinux-release.lock"


class ReleaseError(Exception):
    """A sentence for fail_json; main adds which release is current afterwards."""


def _check_files(files):
    """The files option as {normalised relative path: sha256}; refused before anything on the host is read."""
    checked = {}
    for rel, expected in files.items():
        try:
            rel = _manifest.check_relative(rel, "files key")
        except ManifestError as exc:
            raise ReleaseError("%s; pass the files dict swiftlinux.deploy.artifact_info returns" % exc)
        if not isinstance(expected, str) or not _SHA256.match(expected):
            raise ReleaseError("files[%s] must be a sha256 of 64 lowercase hex digits, not %r; pass the files dict "
                               "swiftlinux.deploy.artifact_info returns" % (rel, expected))
        checked[rel] = expected
    return checked


def _check_staging(root, staging):
    """staging as a path, refused unless it is <root>/releases/.staging* and a real directory, not a link."""
    staging = os.path.normpath(staging)
    releases = os.path.join(os.path.normpath(root), "releases")
    if os.path.dirname(staging) != releases or not os.path.basename(staging).startswith(STAGING_PREFIX):
        raise ReleaseError("staging %s is not a directory named %s* directly in %s, and only such a dedicated upload "
                           "directory is installed or removed; upload to %s/%s-<release id>"
                           % (staging, STAGING_PREFIX, releases, releases, STAGING_PREFIX))
    if os.path.realpath(os.path.dirname(staging)) != os.path.realpath(releases) or os.path.islink(staging):
        raise ReleaseError("staging %s or its parent is a symbolic link, so it may lead outside %s; upload into a real "
                           "directory %s/%s-<release id>" % (staging, root, releases, STAGING_PREFIX))
    return staging


def _check_tree(directory):
    """Refuse special files and symlinks that lead out of directory, anywhere below it, before hashing anything."""
    for current, dirs, names in os.walk(directory):
        for name in dirs + names:
            full = os.path.join(current, name)
            if _manifest.file_type(full) == "link":
                rel = os.path.relpath(full, directory)
                _manifest.check_link(directory, rel, "symbolic link in %s:" % directory)


def _mismatches(directory, files):
    """Files that are missing, not regular, or differ; every path is checked to stay inside before it is opened."""
    _check_tree(directory)
    bad = []
    for rel, expected in sorted(files.items()):
        full = _manifest.contained(directory, rel, "files key")
        kind = _manifest.file_type(full)
        if kind != "file":
            bad.append("%s (%s)" % (rel, {"missing": "missing", "link": "a symbolic link, not a regular file"}.get(
                kind, "a directory, not a regular file")))
        elif sha256_file(full) != expected:
            bad.append("%s (checksum mismatch)" % rel)
    return bad


def _current_id(root):
    link = os.path.join(root, "current")
    if not os.path.islink(link):
        return None
    return os.path.basename(os.readlink(link).rstrip("/"))


def _what_is_current(root):
    """A truthful clause about current, for every failure message."""
    link = os.path.join(root, "current")
    if os.path.lexists(link) and not os.path.islink(link):
        return "%s is not a symlink, so no release is current" % link
    current = _current_id(root)
    return "release %s is current" % current if current else "no release is current"


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
    ids = [d for d in os.listdir(releases)
           if not d.startswith(".") and _ID.match(d) and _manifest.file_type(os.path.join(releases, d)) == "directory"]
    ids.sort(key=lambda d: os.path.getmtime(os.path.join(releases, d)), reverse=True)
    doomed = [d for d in ids[keep:] if d not in protect]
    for release_id in doomed:
        shutil.rmtree(os.path.join(releases, release_id))
    return doomed


def _lock(root):
    """Hold an exclusive lock on root for the rest of the run, so parallel runs on one root take turns."""
    handle = os.open(os.path.join(root, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _rollback(module, root, target, result):
    final = os.path.join(root, "releases", target)
    if _manifest.file_type(final) != "directory":
        raise ReleaseError("cannot roll back to release %s: %s does not exist" % (target, final))
    result["changed"] = result["previous_id"] != target
    if result["changed"] and not module.check_mode:
        _switch(root, target)
    return result


def _present(module, root, release_id, result):
    p = module.params
    releases = os.path.join(root, "releases")
    final = os.path.join(releases, release_id)
    before = result["previous_id"]
    files = _check_files(p["files"])
    staging = _check_staging(root, p["staging"]) if p["staging"] else None
    kind = _manifest.file_type(final)
    if kind not in ("missing", "directory"):
        raise ReleaseError("%s is not a release directory; move it away and deploy again" % final)
    install = kind == "missing"
    if install and (p["pull"] or p["archive"]) and not module.check_mode:
        _ensure_dir(root)
        staging = _stage(p, root, release_id, result)
    if install:
        if module.check_mode and not (staging and os.path.isdir(staging)):
            result["changed"] = True  # in check mode the upload (or pull) before this did not happen
            return result
        if not staging or _manifest.file_type(staging) != "directory":
            raise ReleaseError("release %s is not installed under %s and no uploaded staging directory was given; "
                               "upload the artifact first" % (release_id, releases))
        try:
            bad = _mismatches(staging, files)
        except ManifestError as exc:
            bad = [str(exc)]
        if bad:
            if not module.check_mode:
                shutil.rmtree(staging, ignore_errors=True)  # it passed _check_staging: it is our upload directory
            raise ReleaseError("release %s failed verification (%s); the staging directory was removed, re-upload the "
                               "artifact" % (release_id, ", ".join(bad)))
    else:
        bad = _mismatches(final, files)
        if bad:
            raise ReleaseError("installed release %s is damaged (%s); remove %s and deploy again"
                               % (release_id, ", ".join(bad), final))
        if staging and os.path.isdir(staging) and not module.check_mode:
            shutil.rmtree(staging, ignore_errors=True)  # an upload of what is installed; ours (_check_staging)
    result["changed"] = install or before != release_id
    if module.check_mode or not result["changed"]:
        return result
    try:
        if install:
            os.rename(staging, final)
        _switch(root, release_id)
        result["pruned"] = _prune(root, p["keep"], {release_id, before})
        if p["pull"]:
            _release_oci.prune_cache(p["pull"]["cache"] or os.path.join(root, ".blobs"), os.path.join(root, "releases"))
    except OSError as exc:
        raise ReleaseError("could not switch %s to release %s: %s" % (root, release_id, exc))
    return result


def _ensure_dir(path):
    """path as a directory owned by root with mode 0755, as the service role keeps a service's root and releases."""
    if _manifest.file_type(path) == "missing":
        os.mkdir(path, 0o755)
    elif _manifest.file_type(path) != "directory":
        raise ReleaseError("%s is not a directory; move it away and deploy again" % path)
    info = os.lstat(path)
    if (info.st_uid, info.st_gid) != (0, 0) and os.geteuid() == 0:
        os.lchown(path, 0, 0)
    if stat.S_IMODE(info.st_mode) != 0o755:
        os.chmod(path, 0o755)


def _stage(p, root, release_id, result):
    """Extract the uploaded archive (src) or the pulled release into a staging directory of this module's own,
    add content and links; returns its path."""
    releases = os.path.join(root, "releases")
    _ensure_dir(releases)
    staging = _check_staging(root, os.path.join(releases, "%s-%s" % (STAGING_PREFIX, release_id)))
    if os.path.lexists(staging):
        shutil.rmtree(staging)  # an interrupted pull or upload of this release: a staging directory (checked above)
    done = False
    try:
        if p["pull"]:
            pull = p["pull"]
            host, repository, digest = _release_oci.parse_reference(pull["reference"])
            cache = pull["cache"] or os.path.join(root, ".blobs")
            registry = _release_oci.ReleaseRegistry(host, pull["username"], pull["password"], pull["insecure"])
            pulled = _release_oci.pull(registry, repository, digest, cache, staging)
        else:
            if _manifest.file_type(p["archive"]) != "file":
                raise ReleaseError("archive %s is not a regular file on the host; upload the artifact with src"
                                   % p["archive"])
            os.mkdir(staging, 0o755)
            _release_oci.extract(p["archive"], staging, compressed=False)
        for rel, text in sorted(p["content"].items()):
            full = _manifest.contained(staging, rel, "content key")
            if not os.path.isdir(os.path.dirname(full)):
                os.makedirs(os.path.dirname(full), 0o755)
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(text)
        for rel, target in sorted(p["links"].items()):
            full = _manifest.contained(staging, rel, "links key")
            if not os.path.isdir(os.path.dirname(full)):
                os.makedirs(os.path.dirname(full), 0o755)
            if os.path.lexists(full):
                raise ReleaseError("links key %s is already in the release; choose another path" % rel)
            os.symlink(target, full)
            _manifest.check_link(staging, rel, "links key")
        done = True
    finally:
        if not done:
            shutil.rmtree(staging, ignore_errors=True)  # ours: made by this run, checked by _check_staging
    if p["pull"]:
        _release_oci.record_release(cache, release_id, pulled["layers"])
        result.update(fetched_bytes=pulled["fetched_bytes"], layers=pulled["layers"])
    return staging


def target_of(params):
    """The release current should point at after this run."""
    return params["release_id"] if params["state"] == "present" else params["previous_id"]


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
            pull=dict(type="dict", options=dict(
                reference=dict(type="str", required=True),
                username=dict(type="str"),
                password=dict(type="str", no_log=True),
                insecure=dict(type="bool", default=False),
                cache=dict(type="path"),
            )),
            src=dict(type="path"),
            archive=dict(type="path"),
            content=dict(type="dict", default={}, no_log=True),
            links=dict(type="dict", default={}),
        ),
        required_if=[("state", "rollback", ("previous_id",))],
        mutually_exclusive=[("src", "pull", "staging"), ("archive", "pull", "staging")],
        supports_check_mode=True,
    )
    p = module.params
    root, release_id = os.path.normpath(p["root"]), p["release_id"]

    def refuse(msg):
        module.fail_json(msg="%s; nothing changed, %s" % (msg, _what_is_current(root)))

    for name in ("release_id", "previous_id"):
        if p[name] is not None and not _ID.match(p[name]):
            refuse("%s %r may hold only letters, digits, '.', '_' and '-'; pass the id swiftlinux.deploy.artifact_info "
                   "returns" % (name, p[name]))
    if p["keep"] < 1:
        refuse("keep is %d, but the current release must be kept; set keep to 1 or more" % p["keep"])
    if not os.path.lexists(root) and module.check_mode and p["state"] == "present":
        module.exit_json(changed=True, release_id=target_of(p), previous_id=None, pruned=[],
                         path=os.path.join(root, "releases", target_of(p)))  # a first install in check mode
    if p["src"] is not None and p["archive"] is None:
        refuse("src %s reached the module without its upload: src is uploaded by the release action plugin, so call "
               "the module as swiftlinux.deploy.release (not through another action or module runner)" % p["src"])
    if not os.path.lexists(root) and p["state"] == "present" and (p["archive"] or p["pull"]) and not module.check_mode:
        try:
            os.makedirs(root, 0o755)  # its owner and mode are checked like an existing root's (_ensure_dir)
        except OSError as exc:
            refuse("could not create root %s: %s" % (root, exc.strerror or exc))
    if not os.path.isdir(root):
        refuse("root %s is not a directory; create it (the service role does) and deploy again" % root)
    target = target_of(p)
    link = os.path.join(root, "current")
    result = dict(changed=False, release_id=target, previous_id=_current_id(root), pruned=[], fetched_bytes=0,
                  path=os.path.join(root, "releases", target),
                  diff=dict(before="current -> %s\n" % _current_id(root), after="current -> %s\n" % target))
    lock = None
    try:
        lock = None if module.check_mode else _lock(root)
        result["previous_id"] = _current_id(root)  # again: a run we waited for may have switched it
        if os.path.lexists(link) and not os.path.islink(link):
            raise ReleaseError("%s is a directory or file, not the symlink this module manages, so it changed "
                               "nothing; move %s away and deploy again" % (link, link))
        if p["state"] == "rollback":
            result = _rollback(module, root, target, result)
        else:
            result = _present(module, root, release_id, result)
    except (ReleaseError, ManifestError, OciError) as exc:
        module.fail_json(msg="%s; %s" % (exc, _what_is_current(root)), **result)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            module.fail_json(msg="release %s could not be installed under %s: the file system is full (%s); free space "
                                 "there or use another root. Its staging directory was removed and the release that "
                                 "was current is untouched: %s" % (target, root, exc.strerror, _what_is_current(root)),
                             **result)
        module.fail_json(msg="release %s under %s failed: %s (%s); fix that and deploy again; %s"
                             % (target, root, exc.strerror or exc, exc.filename or root, _what_is_current(root)),
                         **result)
    finally:
        if lock is not None:
            os.close(lock)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
