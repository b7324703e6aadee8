# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What an artifact (a swift_build output or a shared_objects bag) holds and needs: shared by artifact_info, which
reports it, and release_push, which ships it to a registry."""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _manifest
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import OWNER_MARK, sha256_file
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import GLIBC_FAMILY, LINK_MODES


# artifact_info's options, shared with its action plugin, which validates them in the controller's process.
ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    executable=dict(type="str"),
    include_debug_info=dict(type="bool", default=False),
)


class ArtifactError(Exception):
    """A sentence for fail_json."""


def describe_or_error(path, executable=None, include_debug=False):
    """describe(), or (None, a sentence) when the artifact cannot be described: one answer for module and action."""
    try:
        return describe(path, executable, include_debug), None
    except (ArtifactError, _manifest.ManifestError) as exc:
        return None, str(exc)
    except OSError as exc:
        return None, "cannot read artifact %s: %s; make it readable or rebuild it" % (path, exc)


def _tree(root, rel):
    """Files and symlinks under root/rel (a file or a directory), relative to root; links are not followed.

    rel and everything below it must stay inside root, and special files are refused before anything opens them.
    """
    full = root if rel == "." else _manifest.contained(root, rel, "artifact entry")
    kind = _manifest.file_type(full)
    if kind != "directory":
        return [os.path.normpath(rel)]
    found = []
    for current, dirs, files in os.walk(full):
        links = [d for d in dirs if os.path.islink(os.path.join(current, d))]
        dirs[:] = sorted(d for d in dirs if d not in links)
        for name in sorted(files + links):
            entry = os.path.join(current, name)
            _manifest.file_type(entry)
            found.append(os.path.relpath(entry, root))
    return [rel for rel in found if rel != OWNER_MARK]


def _single_executable(path, manifest, executable, include_debug):
    products = manifest["products"]
    if executable is None and len(products) == 1:
        executable = next(iter(products))
    if executable not in products:
        raise ArtifactError("%s holds the executables %s; set executable to one of them"
                            % (path, ", ".join(sorted(products)) or "(none)"))
    product, mode = products[executable], manifest["link_mode"]
    if mode not in LINK_MODES:
        raise ArtifactError("%s records the unknown link mode %r; rebuild it with swift_build (modes: %s)"
                            % (path, mode, ", ".join(LINK_MODES)))
    if mode == "dynamic":
        raise ArtifactError("%s is a dynamic build of %s, which needs the Swift runtime beside it; collect it into a "
                            "bag with swiftlinux.deploy.shared_objects and deploy the bag" % (path, executable))
    # The manifest records absolute paths of the machine that built it; only their file names count here.
    shipped = [executable] + [os.path.basename(r) for r in product["resources"]]
    backtracer = os.path.basename(product["backtracer"]) if product.get("backtracer") else None
    if backtracer:
        shipped.append(backtracer)
    if include_debug and product.get("debug_file"):
        shipped.append(os.path.basename(product["debug_file"]))
    elf = product["elf"]
    return dict(kind="executable", link_mode=mode, scope=None, executable=executable,
                architecture=elf["machine"], glibc_required=elf.get("glibc_required"),
                glibcxx_required=elf.get("glibcxx_required"), system_libraries=elf["needed"],
                command=[executable], entrypoint=executable, backtracer=backtracer,
                expected={executable: product["sha256"]},
                shipped=[f for rel in shipped for f in _tree(path, rel)])


def _bag(path, manifest, executable):
    executables = manifest["executables"]
    if executable is None and len(executables) == 1:
        executable = executables[0]
    if executable not in executables:
        raise ArtifactError("the bag %s holds the executables %s; set executable to one of them"
                            % (path, ", ".join(executables) or "(none)"))
    scope = manifest["scope"]
    bundled = {os.path.basename(f["path"]) for f in manifest["files"] if f["kind"] in ("library", "loader")}
    needed = manifest.get("system_libraries")
    if needed is None:  # derive: what the executables need that the bag does not carry
        needed = sorted(GLIBC_FAMILY & set(manifest.get("needed") or ()) - bundled)
    own_libc = scope == "all"
    backtracer = manifest.get("backtracer")
    if backtracer is not None and not any(os.path.normpath(f["path"]) == os.path.normpath(backtracer)
                                          and f["kind"] in ("backtracer", "launcher") for f in manifest["files"]):
        raise ArtifactError("%s names the backtracer %s, which is not a backtracer or launcher among the bag's files; "
                            "rebuild the artifact with swiftlinux.deploy.shared_objects"
                            % (os.path.join(path, _manifest.BAG_MANIFEST), backtracer))
    return dict(kind="bag", link_mode="dynamic", scope=scope, executable=executable,
                architecture=manifest["architecture"],
                glibc_required=None if own_libc else manifest.get("glibc_required"),
                glibcxx_required=None if own_libc else manifest.get("glibcxx_required"),
                system_libraries=[] if own_libc else needed,
                command=list(manifest["launch"].get(executable) or [os.path.join("bin", executable)]),
                entrypoint=os.path.join("bin", executable),
                backtracer=os.path.normpath(backtracer) if backtracer else None,
                # The bag's bin/<exe> is a launcher script: the host needs /bin/sh to start it.
                needs_shell=any(f["kind"] == "launcher" and os.path.normpath(f["path"]) == os.path.join("bin", executable)
                                for f in manifest["files"]),
                expected={os.path.normpath(f["path"]): f["sha256"] for f in manifest["files"]},
                # The whole tree: SONAME links and bundle links are not in the manifest's file list.
                shipped=_tree(path, "."))


def describe(path, executable=None, include_debug=False):
    """The deploy view of an artifact directory; raises ArtifactError or ManifestError with a sentence on bad input."""
    if not os.path.isdir(path):
        raise ArtifactError("artifact %s does not exist or is not a directory; build it first with "
                            "swiftlinux.deploy.swift_build (or shared_objects for a bag)" % path)
    if os.path.lexists(os.path.join(path, _manifest.BAG_MANIFEST)):
        info = _bag(path, _manifest.read_bag(path), executable)
    elif os.path.lexists(os.path.join(path, _manifest.BUILD_MANIFEST)):
        info = _single_executable(path, _manifest.read_build(path), executable, include_debug)
    else:
        raise ArtifactError("%s has neither %s nor %s, so it is not a build artifact; point path at a "
                            "swift_build dest or a bag" % (path, _manifest.BUILD_MANIFEST, _manifest.BAG_MANIFEST))

    files, links, changed = {}, {}, []
    for rel in info.pop("shipped"):
        full = os.path.join(path, _manifest.check_relative(rel, "artifact entry"))
        kind = _manifest.file_type(full)
        if kind == "missing":
            raise ArtifactError("%s is listed in the manifest of %s but missing; rebuild the artifact" % (rel, path))
        if kind == "link":
            # e.g. a SONAME link in a bag; its target carries the checksum and must be inside the artifact too
            links[rel] = _manifest.check_link(path, rel, "symbolic link")
            continue
        files[rel] = sha256_file(_manifest.contained(path, rel, "artifact entry"))
    for rel, expected in sorted(info.pop("expected").items()):
        if rel not in files:
            raise ArtifactError("%s is listed in the manifest of %s but is not a regular file there; rebuild the "
                                "artifact" % (rel, path))
        if files[rel] != expected:
            changed.append(rel)
    if changed:
        raise ArtifactError("checksum mismatch in %s: %s changed since the manifest was written; rebuild the "
                            "artifact instead of editing it" % (path, ", ".join(changed)))
    listing = json.dumps([sorted(files.items()), sorted(links.items())]).encode()
    info.setdefault("needs_shell", False)
    info.update(files=files, links=links, release_id=hashlib.sha256(listing).hexdigest()[:16],
                size=sum(os.path.getsize(os.path.join(path, rel)) for rel in files))
    return info
