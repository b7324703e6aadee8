# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one owner of the artifact manifests and of keeping untrusted paths inside their root.

swift_build writes `swift_build.json`, shared_objects writes `bag.json`; both are read back by other modules, maybe
on another machine, from a folder anyone could have edited. So every reader goes through `read_build` / `read_bag`,
which check the type of every field used downstream, and every path taken from a manifest goes through `contained`.
"""

from __future__ import annotations

import json
import os
import re
import stat

BUILD_MANIFEST = "swift_build.json"
BAG_MANIFEST = "bag.json"
# A manifest of a few hundred executables and libraries is far below this; more is not a manifest.
MAX_MANIFEST_BYTES = 16 << 20
BAG_SCOPES = ("swift", "non-system", "all")
BAG_FILE_KINDS = ("executable", "library", "loader", "resource", "launcher", "backtracer")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# The backtracer's path goes into SWIFT_BACKTRACE (comma-separated) in a systemd unit, so only plain characters.
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9._+/-]+$")


class ManifestError(Exception):
    """One sentence naming the file or field, the problem and the fix."""


# ---- paths ----------------------------------------------------------------------------------------------------------

def check_name(name, what):
    """`name` as a plain file name (no directory part); ManifestError otherwise."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ManifestError("%s %r is not a plain file name; names may not be empty, '.', '..' or hold '/' or NUL"
                            % (what, name))
    return name


def check_relative(rel, what):
    """`rel` as a normalised relative path with no '..' component; ManifestError otherwise."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise ManifestError("%s %r is not a relative path; it must be a non-empty string without NUL" % (what, rel))
    if rel.startswith("/"):
        raise ManifestError("%s %r is an absolute path, but it must stay inside its directory; use a relative path"
                            % (what, rel))
    parts = [part for part in rel.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise ManifestError("%s %r leaves its directory (it is empty or has a '..' component); use a path inside it"
                            % (what, rel))
    return "/".join(parts)


def _inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def contained(root, rel, what="path"):
    """root/rel after checking that rel is relative and that its real location (links resolved) stays in root."""
    rel = check_relative(rel, what)
    full = os.path.join(root, rel)
    if not _inside(os.path.realpath(full), os.path.realpath(root)):
        raise ManifestError("%s %s resolves to %s, outside %s, through a symbolic link; replace the link with the "
                            "file itself" % (what, rel, os.path.realpath(full), root))
    return full


def check_link(root, rel, what="link"):
    """The target of the symlink root/rel, refused when it is absolute or resolves outside root."""
    target = os.readlink(os.path.join(root, check_relative(rel, what)))
    if target.startswith("/"):
        raise ManifestError("%s %s points at the absolute path %s, which means another file on every host; make it "
                            "a relative link inside the artifact" % (what, rel, target))
    contained(root, rel, what)
    return target


def file_type(path):
    """'file', 'directory', 'link' or 'missing' by lstat; ManifestError for a FIFO, socket or device, before any open."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    raise ManifestError("%s is a special file (FIFO, socket or device), which an artifact may not hold; remove it and "
                        "rebuild the artifact" % path)


def check_regular(path, what="file"):
    """ManifestError unless path is a regular file (not a link, not special), checked before it is opened."""
    kind = file_type(path)
    if kind != "file":
        raise ManifestError("%s %s is %s where a regular file is expected; rebuild the artifact"
                            % (what, path, {"missing": "missing", "link": "a symbolic link"}.get(kind, "a directory")))
    return path


# ---- reading --------------------------------------------------------------------------------------------------------

def _load(root, name):
    path = os.path.join(root, name)
    check_regular(path, name)
    if os.path.getsize(path) > MAX_MANIFEST_BYTES:
        raise ManifestError("%s is larger than %d bytes, so it is not a manifest this collection wrote; rebuild the "
                            "artifact" % (path, MAX_MANIFEST_BYTES))
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError("%s is not valid JSON (%s); rebuild the artifact" % (path, str(exc).splitlines()[0]))


class _Checker:
    """Type checks that name the manifest file and the field in their error."""

    def __init__(self, path):
        self.path = path

    def fail(self, field, wanted, value):
        raise ManifestError("%s: field %s must be %s, not %s; rebuild the artifact"
                            % (self.path, field, wanted, _short(value)))

    def get(self, doc, key, field, kinds, wanted, optional=False):
        if key not in doc:
            if optional:
                return None
            raise ManifestError("%s: field %s is missing; rebuild the artifact" % (self.path, field))
        value = doc[key]
        if value is None and optional:
            return None
        if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
            self.fail(field, wanted, value)
        return value

    def string(self, doc, key, field, optional=False):
        return self.get(doc, key, field, str, "a string", optional)

    def strings(self, doc, key, field, optional=False):
        values = self.get(doc, key, field, list, "a list of strings", optional)
        if values is not None and not all(isinstance(v, str) for v in values):
            self.fail(field, "a list of strings", values)
        return values

    def sha256(self, doc, key, field):
        value = self.string(doc, key, field)
        if not _SHA256.match(value):
            self.fail(field, "64 lowercase hex digits", value)
        return value

    def name(self, value, field):
        try:
            return check_name(value, "%s: %s" % (self.path, field))
        except ManifestError as exc:
            raise ManifestError("%s; rebuild the artifact" % exc)

    def relative(self, value, field):
        try:
            return check_relative(value, "%s: %s" % (self.path, field))
        except ManifestError as exc:
            raise ManifestError("%s; rebuild the artifact" % exc)


def _short(value):
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_build(root):
    """swift_build.json of a swift_build dest, checked; products names are plain file names."""
    doc = _load(root, BUILD_MANIFEST)
    check = _Checker(os.path.join(root, BUILD_MANIFEST))
    if not isinstance(doc, dict):
        check.fail("(top level)", "an object", doc)
    check.string(doc, "link_mode", "link_mode")
    check.string(doc, "fingerprint", "fingerprint", optional=True)
    check.string(doc, "swift_version", "swift_version", optional=True)
    products = check.get(doc, "products", "products", dict, "an object of products")
    for name, product in products.items():
        check.name(name, "product name")
        field = "products.%s" % name
        if not isinstance(product, dict):
            check.fail(field, "an object", product)
        check.sha256(product, "sha256", field + ".sha256")
        for index, resource in enumerate(check.strings(product, "resources", field + ".resources")):
            check.name(os.path.basename(resource), "%s.resources[%d]" % (field, index))
        for key in ("backtracer", "debug_file"):
            value = check.string(product, key, "%s.%s" % (field, key), optional=True)
            if value is not None:
                check.name(os.path.basename(value), "%s.%s" % (field, key))
        backtracer = product.get("backtracer")
        if backtracer is not None and not _PLAIN_PATH.match(os.path.basename(backtracer)):
            check.fail(field + ".backtracer", "a file name of letters, digits and ._+-", backtracer)
        elf = check.get(product, "elf", field + ".elf", dict, "an object of ELF facts")
        check.string(elf, "machine", field + ".elf.machine")
        check.string(elf, "glibc_required", field + ".elf.glibc_required", optional=True)
        check.string(elf, "glibcxx_required", field + ".elf.glibcxx_required", optional=True)
        check.strings(elf, "needed", field + ".elf.needed")
    return doc


def read_bag(root):
    """bag.json of a shared_objects dest, checked; every file, link and launch path is relative and inside."""
    doc = _load(root, BAG_MANIFEST)
    check = _Checker(os.path.join(root, BAG_MANIFEST))
    if not isinstance(doc, dict):
        check.fail("(top level)", "an object", doc)
    check.string(doc, "fingerprint", "fingerprint", optional=True)
    if check.string(doc, "scope", "scope") not in BAG_SCOPES:
        check.fail("scope", "one of " + ", ".join(BAG_SCOPES), doc["scope"])
    check.string(doc, "architecture", "architecture")
    for index, name in enumerate(check.strings(doc, "executables", "executables")):
        check.name(name, "executables[%d]" % index)
    check.strings(doc, "system_libraries", "system_libraries", optional=True)
    check.strings(doc, "needed", "needed", optional=True)
    for key in ("glibc_required", "glibcxx_required", "glibc_bundled", "interpreter"):
        check.string(doc, key, key, optional=True)
    backtracer = check.string(doc, "backtracer", "backtracer", optional=True)
    if backtracer is not None:
        check.relative(backtracer, "backtracer")
        if not _PLAIN_PATH.match(backtracer):
            check.fail("backtracer", "a path of letters, digits and ._+-/", backtracer)
    files = check.get(doc, "files", "files", list, "a list of {path, sha256, size, kind} objects")
    for index, item in enumerate(files):
        field = "files[%d]" % index
        if not isinstance(item, dict):
            check.fail(field, "an object", item)
        check.relative(check.string(item, "path", field + ".path"), field + ".path")
        check.sha256(item, "sha256", field + ".sha256")
        check.get(item, "size", field + ".size", int, "an integer")
        if check.string(item, "kind", field + ".kind") not in BAG_FILE_KINDS:
            check.fail(field + ".kind", "one of " + ", ".join(BAG_FILE_KINDS), item["kind"])
    for index, link in enumerate(check.get(doc, "links", "links", list, "a list of {path, target} objects")):
        field = "links[%d]" % index
        if not isinstance(link, dict):
            check.fail(field, "an object", link)
        check.relative(check.string(link, "path", field + ".path"), field + ".path")
        check.string(link, "target", field + ".target")
    launch = check.get(doc, "launch", "launch", dict, "an object of exec-form commands")
    for name, command in launch.items():
        field = "launch.%s" % check.name(name, "launch name")
        check.strings(launch, name, field)
        if not command:
            check.fail(field, "a non-empty list", command)
        for index, word in enumerate(command):
            if not word.startswith("-"):  # options of the loader; every other word is a file of the bag
                check.relative(word, "%s[%d]" % (field, index))
    return doc


def write(directory, name, document):
    """Write a manifest the way every reader expects it: sorted keys, indented, UTF-8."""
    with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
