# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""OCI images without a daemon: reproducible layer tars, config, manifest, layout, archive, registry push.

Everything that could vary between two builds of the same files is pinned: entries are sorted, owned by
0:0 with empty owner names, stamped with one mtime (SOURCE_DATE_EPOCH), and gzip writes no name and no
time. Two builds of the same inputs therefore give the same digests. Private to this collection.
"""

from __future__ import annotations

import base64
import collections
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import ssl
import stat
import tarfile
import tempfile
import time

try:
    import zstandard
    HAS_ZSTD = True
except ImportError:  # only compression=zstd needs it; build_image says how to install it
    zstandard = None
    HAS_ZSTD = False

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlencode, urljoin, urlsplit
from ansible.module_utils.urls import open_url

from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import hash_stream, replace_directory
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import canonical_machine

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# Media type of a layer blob by its compression. docker load and registries take all three; Docker engines
# before 23.0 cannot unpack zstd layers.
LAYER_MEDIA = {"gzip": MEDIA_LAYER, "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               "none": "application/vnd.oci.image.layer.v1.tar"}
# Levels chosen for build time: gzip level 1 compresses about three times faster than level 6 for about 10 % more
# bytes on a Swift binary (docs/benchmarks.md). The layer cache keeps each compression and level in its own folder,
# so a blob made at another level is never taken for one of these.
GZIP_LEVEL = 1
ZSTD_LEVEL = 3
CACHE_FOLDERS = {"gzip": "gzip-%d" % GZIP_LEVEL, "zstd": "zstd-%d" % ZSTD_LEVEL}
# Folders of blobs this module wrote with other levels (gzip was level 6 there): never read, pruned by age.
_OLD_CACHE_FOLDERS = ("gzip", "zstd")
REF_NAME = "org.opencontainers.image.ref.name"

# Docker's reference grammar (distribution/reference), reduced to what a push needs.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_HOST_RE = re.compile(r"^%s$" % _HOST)
_REPOSITORY_RE = re.compile(r"^%s(?:/%s)*$" % (_COMPONENT, _COMPONENT))
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_LOOPBACK = re.compile(r"^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$")
# A full reference: [host[:port]/]path[:tag][@sha256:hex], as Docker parses it in FROM.
_REFERENCE_RE = re.compile(r"^(?:%s/)?%s(?:/%s)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?\Z"
                           % (_HOST, _COMPONENT, _COMPONENT))
_BLOB_NAME = re.compile(r"^blobs/sha256/[0-9a-f]{64}\Z")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_CACHED_BLOB = re.compile(r"^[0-9a-f]{64}\Z")
STAGE_AGE = 24 * 3600  # a blob still being written is never older than this
OWN_HISTORY = "swiftlinux.deploy.oci_image: "
MAX_MEMBERS = 100000  # far more than any image archive holds; a crafted one may hold millions
MAX_DOCUMENT = 4 << 20  # manifest, index and config are a few KiB; refuse megabytes of JSON
MAX_REDIRECTS = 5
MAX_ERROR_BODY = 64 << 10  # enough of an error answer for its message
USER_AGENT = "swiftlinux.deploy"
_KIND_NAMES = {tarfile.DIRTYPE: "directory", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link",
               tarfile.FIFOTYPE: "FIFO", tarfile.CHRTYPE: "device", tarfile.BLKTYPE: "device",
               tarfile.GNUTYPE_SPARSE: "sparse file", tarfile.CONTTYPE: "contiguous file"}
_REWRITE = ("the archive is damaged or crafted; write it again with swiftlinux.deploy.oci_image format=archive or "
            "docker save")


class OciError(Exception):
    """One sentence for fail_json: what went wrong and what to do."""


Entry = collections.namedtuple("Entry", "path kind mode source data target uid gid")


def file_entry(path, source=None, data=None, mode=None, uid=0, gid=0):
    """A regular file at image path `path`, from a host file or from bytes."""
    if mode is None:
        mode = stat.S_IMODE(os.stat(source).st_mode) if source else 0o644
    return Entry(path.strip("/"), "file", mode, source, data, None, uid, gid)


def dir_entry(path, mode=0o755, uid=0, gid=0):
    return Entry(path.strip("/"), "dir", mode, None, None, None, uid, gid)


def symlink_entry(path, target):
    return Entry(path.strip("/"), "symlink", 0o777, None, None, target, 0, 0)


def tree_entries(source, dest):
    """Entries for a host directory tree placed at `dest`; symlinks stay symlinks."""
    entries = [dir_entry(dest, stat.S_IMODE(os.stat(source).st_mode))]
    for root, dirs, files in os.walk(source):
        dirs.sort()
        rel_root = os.path.relpath(root, source)
        for name in sorted(dirs) + sorted(files):
            host = os.path.join(root, name)
            inside = os.path.normpath(os.path.join(dest, rel_root, name))
            if os.path.islink(host):
                entries.append(symlink_entry(inside, os.readlink(host)))
            elif os.path.isdir(host):
                entries.append(dir_entry(inside, stat.S_IMODE(os.stat(host).st_mode)))
            elif os.path.isfile(host):
                entries.append(file_entry(inside, source=host))
    return entries


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _with_parents(entries):
    """Every entry's parent directories as entries too (0755), later entries winning per path."""
    by_path = {}
    for entry in entries:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            by_path.setdefault(parent, dir_entry(parent))
        by_path[entry.path] = entry
    return [by_path[path] for path in sorted(by_path)]


class Layer(object):
    """One layer: `tar` is kept for listing, `blob` (the tar compressed as asked) is what ships.

    With a `cache` (LayerCache), a tar whose compressed blob is already there is not compressed again.
    """

    def __init__(self, entries, mtime, role, compression="gzip", cache=None):
        self.role = role
        self.entries = _with_parents(entries)
        self.tar = _tar_bytes(self.entries, mtime)
        self.diff_id = digest_of(self.tar)
        self.compression = compression
        self.media_type = LAYER_MEDIA[compression]
        self.blob = cache.get(self.diff_id, compression) if cache else None
        self.cached = self.blob is not None
        if self.blob is None:
            self.blob = compress(self.tar, compression)
            if cache:
                cache.put(self.diff_id, compression, self.blob)
        self.digest = digest_of(self.blob)
        self.size = len(self.blob)

    def paths(self):
        return [entry.path for entry in self.entries]


def compress(data, compression):
    """A layer tar as its blob: gzip (no name, no time), zstd (fixed level, one thread) or as it is."""
    if compression == "gzip":
        return gzip_bytes(data)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    return data


class LayerCache(object):
    """Compressed layer blobs by the digest of their tar and their compression, so an unchanged layer (base,
    tzdata, backtracer, runtime libraries) is compressed once per machine, not once per build.

    A blob is written to a temporary name and renamed, so a reader never sees half of one; a blob that cannot
    be read or written is simply compressed again.
    """

    def __init__(self, directory, writable=True):
        self.directory, self.writable = directory, writable
        self.hits = self.misses = 0

    def _path(self, diff_id, compression):
        return os.path.join(self.directory, CACHE_FOLDERS[compression], diff_id.split(":", 1)[1])

    def get(self, diff_id, compression):
        if compression == "none":
            return None
        path = self._path(diff_id, compression)
        try:
            with open(path, "rb") as handle:
                blob = handle.read()
            if self.writable:
                os.utime(path)  # its time says when it was last used; prune goes by it
        except OSError:
            self.misses += 1
            return None
        self.hits += 1
        return blob or None

    def prune(self, max_age, now=None):
        """Remove the blobs no build used for `max_age` seconds, and blobs half-written by a build that stopped.

        Only names this class writes are touched: a regular file named by 64 hex digits (or .blob-*, a stage)
        directly in a compression's folder (or a folder of an earlier level); anything else there, links
        included, is left alone. Returns the number of files removed.
        """
        now = time.time() if now is None else now
        removed = 0
        for folder_name in sorted(CACHE_FOLDERS.values()) + list(_OLD_CACHE_FOLDERS):
            folder = os.path.join(self.directory, folder_name)
            if os.path.islink(folder) or not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                if _CACHED_BLOB.match(name):
                    limit = max_age
                elif name.startswith(".blob-"):
                    limit = STAGE_AGE
                else:
                    continue
                path = os.path.join(folder, name)
                try:
                    info = os.lstat(path)
                    if stat.S_ISREG(info.st_mode) and info.st_mtime < now - limit:
                        os.unlink(path)
                        removed += 1
                except OSError:
                    pass  # gone already, or not ours to remove: the next build tries again
        return removed

    def put(self, diff_id, compression, blob):
        if compression == "none" or not self.writable:
            return
        path = self._path(diff_id, compression)
        stage = None
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handle, stage = tempfile.mkstemp(prefix=".blob-", dir=os.path.dirname(path))
            with os.fdopen(handle, "wb") as stream:
                stream.write(blob)
            os.replace(stage, path)
        except OSError:
            if stage and os.path.exists(stage):
                os.unlink(stage)


def _tar_bytes(entries, mtime):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.path + ("/" if entry.kind == "dir" else ""))
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, entry.uid, entry.gid, "", ""
            info.mode = entry.mode
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
                archive.addfile(info)
            elif entry.data is not None:
                info.size = len(entry.data)
                archive.addfile(info, io.BytesIO(entry.data))
            else:
                info.size = os.path.getsize(entry.source)
                with open(entry.source, "rb") as handle:
                    archive.addfile(info, handle)
    return buffer.getvalue()


def gzip_bytes(data):
    buffer = io.BytesIO()
    # filename="" and mtime=0 keep the gzip header free of anything that changes between builds.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=GZIP_LEVEL) as stream:
        stream.write(data)
    return buffer.getvalue()


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def rfc3339(epoch):
    import datetime  # pylint: disable=import-outside-toplevel
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Image(object):
    """Config, manifest and blobs of one single-platform image."""

    def __init__(self, layers, architecture, config, epoch, base=None):
        """`layers` are new Layer objects; `base` an Image (or LoadedImage) whose layers go below them."""
        self.base = base
        self.layers = list(layers)
        base_layers = base.layer_descriptors() if base else []
        base_diff_ids = base.diff_ids() if base else []
        history = list(base.history()) if base else []
        history += [{"created": rfc3339(epoch), "created_by": "swiftlinux.deploy.oci_image: %s layer" % layer.role}
                    for layer in self.layers]
        self.config = {
            "architecture": architecture,
            "os": "linux",
            "created": rfc3339(epoch),
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": base_diff_ids + [layer.diff_id for layer in self.layers]},
            "history": history,
        }
        self.config_bytes = canonical_json(self.config)
        self.config_digest = digest_of(self.config_bytes)
        self.manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": self.config_digest, "size": len(self.config_bytes)},
            "layers": base_layers + [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
                                     for layer in self.layers],
        }
        self.manifest_bytes = canonical_json(self.manifest)
        self.digest = digest_of(self.manifest_bytes)

    def layer_descriptors(self):
        return list(self.manifest["layers"])

    def diff_ids(self):
        return list(self.config["rootfs"]["diff_ids"])

    def history(self):
        return list(self.config["history"])

    def blob(self, digest):
        """Bytes of a layer blob, looking in the base image for inherited layers."""
        for layer in self.layers:
            if layer.digest == digest:
                return layer.blob
        if self.base is not None:
            return self.base.blob(digest)
        raise KeyError(digest)

    def size(self):
        return self.manifest["config"]["size"] + sum(layer["size"] for layer in self.manifest["layers"])


class LoadedImage(object):
    """An image read back from an OCI layout directory or an archive of one (used as a base, e.g. the Swift runtime).

    Read as untrusted input: blob names must be sha256 digests, documents are size-capped, and every blob is
    checked against its digest when read.
    """

    def __init__(self, source):
        self.directory = source
        self.archive = None
        try:
            if os.path.isfile(source) and not os.path.islink(source):
                self.archive = SafeArchive(source)
            index = json.loads(self._member("index.json", MAX_DOCUMENT))
            self.digest = index["manifests"][0]["digest"]
            self.manifest = json.loads(self._read(self.digest, MAX_DOCUMENT))
            self.config_bytes = self._read(self.manifest["config"]["digest"], MAX_DOCUMENT)
            self.config = json.loads(self.config_bytes)
            for descriptor in self.manifest["layers"]:
                _blob_name(descriptor["digest"])
            if not isinstance(self.config["rootfs"]["diff_ids"], list):
                raise TypeError("diff_ids is not a list")
        except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
            raise OciError("%s is not a readable OCI image layout or archive (%s); build the base image into it with "
                           "swiftlinux.deploy.oci_image format=oci-layout or archive" % (source, exc))

    def _member(self, name, limit):
        if self.archive is not None:
            return self.archive.read(name, "file", limit)
        return _read_capped(os.path.join(self.directory, name), limit)

    def _read(self, digest, limit):
        data = self._member(_blob_name(digest), limit)
        if digest_of(data) != digest:
            raise OciError("%s: blob %s does not match its digest; the base image is damaged or was altered, build "
                           "it again" % (self.directory, digest))
        return data

    def layer_descriptors(self):
        return list(self.manifest["layers"])

    def diff_ids(self):
        return list(self.config["rootfs"]["diff_ids"])

    def history(self):
        return list(self.config.get("history", []))

    def labels(self):
        return dict(self.config.get("config", {}).get("Labels") or {})

    def blob(self, digest):
        return self._read(digest, 1 << 40)


def _blob_name(digest):
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ValueError("%r is not a sha256 digest" % (digest,))
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _all_blobs(image):
    """(digest, bytes) for the config and every layer, base layers first."""
    yield image.config_digest, image.config_bytes
    for descriptor in image.manifest["layers"]:
        yield descriptor["digest"], image.blob(descriptor["digest"])


def _layout_files(image, ref_name, repo_tags):
    """The files of an OCI image layout that `docker load` also reads, as (name, bytes) sorted by name."""
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX,
             "manifests": [{"mediaType": MEDIA_MANIFEST, "digest": image.digest, "size": len(image.manifest_bytes),
                            "annotations": {REF_NAME: ref_name}}]}
    # docker-archive's manifest.json next to the OCI index, so the same tar feeds `docker load`
    # (Docker 20.10 cannot load a plain OCI layout) and OCI tools like skopeo.
    docker = [{"Config": "blobs/sha256/" + image.config_digest.split(":")[1], "RepoTags": repo_tags,
               "Layers": ["blobs/sha256/" + d["digest"].split(":")[1] for d in image.manifest["layers"]]}]
    files = {"oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
             "index.json": canonical_json(index), "manifest.json": canonical_json(docker),
             "blobs/sha256/" + image.digest.split(":")[1]: image.manifest_bytes}
    for digest, data in _all_blobs(image):
        files["blobs/sha256/" + digest.split(":")[1]] = data
    return sorted(files.items())


def existing_digest(path):
    """The manifest digest recorded in an OCI layout directory or archive at `path`, or None."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            index = json.loads(_read_capped(os.path.join(path, "index.json")))
        elif os.path.isfile(path) and not os.path.islink(path):
            archive = SafeArchive(path)
            try:
                index = archive.document("index.json", "index")
            finally:
                archive.close()
        else:
            return None
        return index["manifests"][0]["digest"]
    except (OciError, OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _read_capped(path, limit=MAX_DOCUMENT):
    """A small file's bytes; OciError for a special file or one larger than `limit`."""
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OciError("%s is not a regular file; write the image again with swiftlinux.deploy.oci_image" % path)
    if info.st_size > limit:
        raise OciError("%s is %d bytes, more than the %d it may have; write the image again with "
                       "swiftlinux.deploy.oci_image" % (path, info.st_size, limit))
    with open(path, "rb") as handle:
        return handle.read(info.st_size + 1)


class SafeArchive(object):
    """An uncompressed tar read defensively, as untrusted input.

    Members are indexed once (at most MAX_MEMBERS); a name taken from a document inside the archive must be a
    relative path without '..', must be a regular file, and must fit inside the file. Nothing is decompressed,
    so no gzip bomb can expand, and nothing is extracted to disk.
    """

    def __init__(self, path):
        self.path = path
        if os.path.islink(path) or not os.path.isfile(path):
            raise OciError("image archive %s does not exist or is not a regular file; write it with "
                           "swiftlinux.deploy.oci_image format=archive or docker save, or fix the path" % path)
        self.size = os.path.getsize(path)
        self.members = {}
        try:
            self.tar = tarfile.open(path, mode="r:")
            for count, member in enumerate(self.tar, 1):
                if count > MAX_MEMBERS:
                    raise OciError("%s holds more than %d members, far more than an image archive has; %s"
                                   % (path, MAX_MEMBERS, _REWRITE))
                self.members[member.name] = member
        except (OSError, EOFError, ValueError, tarfile.TarError) as exc:
            raise OciError("%s is not a readable uncompressed tar (%s); decompress it first, or write it with "
                           "swiftlinux.deploy.oci_image format=archive or docker save" % (path, exc))

    def close(self):
        self.tar.close()

    def member(self, name, what):
        if not isinstance(name, str) or not name or name.startswith("/") or "\0" in name or len(name) > 4096 \
                or ".." in name.split("/"):
            raise OciError("%s: the %s is named %r, which is not a relative path inside the archive; %s"
                           % (self.path, what, name, _REWRITE))
        member = self.members.get(name)
        if member is None:
            raise OciError("%s: the %s %s is missing from the archive; %s" % (self.path, what, name, _REWRITE))
        if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise OciError("%s: the %s %s is a %s, not a regular file; %s"
                           % (self.path, what, name, _KIND_NAMES.get(member.type, "special member"), _REWRITE))
        if member.offset_data + member.size > self.size:
            raise OciError("%s: the %s %s claims %d bytes, more than the archive holds; it is truncated or crafted, "
                           "write it again" % (self.path, what, name, member.size))
        return member

    def read(self, name, what, limit):
        member = self.member(name, what)
        if member.size > limit:
            raise OciError("%s: the %s %s is %d bytes, more than the %d it may have; %s"
                           % (self.path, what, name, member.size, limit, _REWRITE))
        try:
            return self.tar.extractfile(member).read(member.size)
        except (OSError, EOFError, tarfile.TarError) as exc:
            raise OciError("%s: cannot read the %s %s (%s); %s" % (self.path, what, name, exc, _REWRITE))

    def document(self, name, what):
        """A JSON member, parsed."""
        try:
            return json.loads(self.read(name, what, MAX_DOCUMENT))
        except (ValueError, RecursionError) as exc:
            raise OciError("%s: the %s %s is not valid JSON (%s); %s"
                           % (self.path, what, name, str(exc)[:80], _REWRITE))

    def sha256(self, name, what):
        member = self.member(name, what)
        try:
            return hash_stream(self.tar.extractfile(member))[0][0]
        except (OSError, EOFError, tarfile.TarError) as exc:
            raise OciError("%s: cannot read the %s %s (%s); %s" % (self.path, what, name, exc, _REWRITE))


def check_archive_replaceable(path):
    """Raise OciError unless `path` is absent or an image archive this module wrote (so it may be overwritten)."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isfile(path):
        raise OciError("%s exists and is not a regular file, so swiftlinux.deploy.oci_image will not replace it with "
                       "an image archive; choose another dest or remove it yourself" % path)
    if not is_own_archive(path):
        raise OciError("%s exists and is not an image archive that swiftlinux.deploy.oci_image wrote, so it will not "
                       "overwrite it; choose another dest or move that file away" % path)


def is_own_archive(path):
    """Whether `path` holds exactly the files write_archive writes, with its ref-name annotation and history."""
    try:
        archive = SafeArchive(path)
        try:
            names = set(archive.members)
            fixed = {"oci-layout", "index.json", "manifest.json"}
            if not fixed <= names or not all(n in fixed or _BLOB_NAME.match(n) for n in names):
                return False
            descriptor = archive.document("index.json", "index")["manifests"][0]
            manifest = archive.document("blobs/sha256/" + descriptor["digest"].split(":", 1)[1], "manifest")
            config = archive.document("blobs/sha256/" + manifest["config"]["digest"].split(":", 1)[1], "config")
            return bool(descriptor["annotations"][REF_NAME]) and all(
                str(step.get("created_by", "")).startswith(OWN_HISTORY) for step in config["history"][-1:])
        finally:
            archive.close()
    except (OciError, KeyError, IndexError, TypeError, AttributeError):
        return False


def check_reference(reference):
    """Refuse a Docker reference (as written in FROM) that is not valid, with one sentence."""
    if not isinstance(reference, str) or not _REFERENCE_RE.match(reference):
        raise OciError("base_image %r is not a valid image reference; use [registry/]name[:tag], for example "
                       "swiftlinux/swift-runtime:6.0.3" % (reference,))


def _named_digest(name):
    """The sha256 hex an archive member's name claims (blobs/sha256/<hex>, <hex>.json or <hex>/layer.tar)."""
    parts = name.replace(".json", "").split("/")
    candidates = [part for part in parts if len(part) == 64 and all(c in "0123456789abcdef" for c in part)]
    return candidates[-1] if candidates else None


def _shape(path, what, value, kind, optional=False):
    """value when it has the JSON type `kind` (elements of lists and values of dicts: str), else OciError."""
    if value is None and optional:
        return kind()
    good = isinstance(value, kind) and not isinstance(value, bool)
    if good and kind is list:
        good = all(isinstance(item, str) for item in value)
    if not good:
        raise OciError("%s: the %s is %s, not %s; %s" % (path, what, type(value).__name__,
                                                         "a list of strings" if kind is list else kind.__name__,
                                                         _REWRITE))
    return value


def _ports(path, exposed):
    ports = []
    for key in _shape(path, "ExposedPorts", exposed, dict, optional=True):
        number = key.split("/", 1)[0]
        if not number.isdigit() or not 1 <= int(number) <= 65535:
            raise OciError("%s: the exposed port %r is not a port from 1 to 65535; %s" % (path, key, _REWRITE))
        ports.append(int(number))
    return sorted(ports)


def read_archive(path):
    """What a deploy needs from an image archive (`docker save` or swiftlinux.deploy.oci_image format=archive).

    Every blob is checked against the digest its name (or the config's diff_ids) claims, so a truncated
    or altered archive is refused before it reaches a host. The archive is untrusted: see SafeArchive.
    """
    archive = SafeArchive(path)
    try:
        return _describe(archive)
    finally:
        archive.close()


def _describe(archive):
    path = archive.path
    manifests = archive.document("manifest.json", "docker manifest")
    if not isinstance(manifests, list) or not manifests or not isinstance(manifests[0], dict):
        raise OciError("%s: manifest.json is not a list of image entries; %s" % (path, _REWRITE))
    manifest = manifests[0]
    config_name = _shape(path, "Config entry of manifest.json", manifest.get("Config"), str)
    layer_names = _shape(path, "Layers entry of manifest.json", manifest.get("Layers"), list)
    repo_tags = _shape(path, "RepoTags entry of manifest.json", manifest.get("RepoTags"), list, optional=True)
    config_bytes = archive.read(config_name, "image config", MAX_DOCUMENT)
    try:
        config = json.loads(config_bytes)
    except (ValueError, RecursionError) as exc:
        raise OciError("%s: the image config %s is not valid JSON (%s); %s"
                       % (path, config_name, str(exc)[:80], _REWRITE))
    config = _shape(path, "config", config, dict)
    image_id = hashlib.sha256(config_bytes).hexdigest()
    if _named_digest(config_name) not in (None, image_id):
        raise OciError("%s: the image config %s does not match its digest; the archive is damaged or was "
                       "altered, write it again" % (path, config_name))
    rootfs = _shape(path, "rootfs of the config", config.get("rootfs"), dict, optional=True)
    diff_ids = [d.split(":", 1)[-1] for d in _shape(path, "diff_ids of the config", rootfs.get("diff_ids"), list,
                                                    optional=True)]
    if len(diff_ids) != len(layer_names):
        raise OciError("%s: manifest.json names %d layers but the config records %d; %s"
                       % (path, len(layer_names), len(diff_ids), _REWRITE))
    for name, diff_id in zip(layer_names, diff_ids):
        actual = archive.sha256(name, "layer")
        expected = [d for d in (_named_digest(name), diff_id) if d]
        if actual not in expected:
            raise OciError("%s: layer %s has sha256 %s, not %s as the image records; the archive is damaged or "
                           "was altered, write it again" % (path, name, actual, " or ".join(expected) or "?"))
    runtime = _shape(path, "config's runtime settings", config.get("config"), dict, optional=True)
    health = _shape(path, "Healthcheck", runtime.get("Healthcheck"), dict, optional=True)
    test = _shape(path, "Healthcheck test", health.get("Test"), list, optional=True)
    user = _shape(path, "User", runtime.get("User"), str, optional=True)
    labels = _shape(path, "Labels", runtime.get("Labels"), dict, optional=True)
    if not all(isinstance(value, str) for value in labels.values()):
        raise OciError("%s: the Labels hold values that are not strings; %s" % (path, _REWRITE))
    architecture = _shape(path, "architecture", config.get("architecture"), str, optional=True) or None
    return {
        "image_id": "sha256:" + image_id,
        "repo_tags": list(repo_tags),
        "os": _shape(path, "os", config.get("os"), str, optional=True) or None,
        "architecture": architecture,
        "machine": canonical_machine(architecture),
        "user": user,
        "entrypoint": list(_shape(path, "Entrypoint", runtime.get("Entrypoint"), list, optional=True)),
        "command": list(_shape(path, "Cmd", runtime.get("Cmd"), list, optional=True)),
        "exposed_ports": _ports(path, runtime.get("ExposedPorts")),
        "healthcheck": test[1:] if test[:1] == ["CMD"] else test,
        "labels": dict(labels),
        "layers": len(layer_names),
        "size": archive.size,
    }


def write_layout(directory, image, ref_name, repo_tags):
    """Write an OCI image layout directory; it replaces `directory` only once complete."""
    parent = os.path.dirname(directory.rstrip("/")) or "/"
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".oci-layout-", dir=parent)
    try:
        for name, data in _layout_files(image, ref_name, repo_tags):
            target = os.path.join(stage, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(data)
        replace_directory(stage, directory, "oci_image")
    finally:
        if os.path.isdir(stage):
            shutil.rmtree(stage)


def write_archive(path, image, ref_name, repo_tags, mtime):
    """Write the layout as one tar (OCI archive that `docker load` accepts too), atomically."""
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    handle, stage = tempfile.mkstemp(prefix=".oci-archive-", dir=parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            with tarfile.open(fileobj=stream, mode="w", format=tarfile.GNU_FORMAT) as archive:
                for name, data in _layout_files(image, ref_name, repo_tags):
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode, info.uname, info.gname = len(data), mtime, 0o644, "", ""
                    archive.addfile(info, io.BytesIO(data))
        os.chmod(stage, 0o644)
        os.replace(stage, path)
    finally:
        if os.path.exists(stage):
            os.unlink(stage)


# ---- references ------------------------------------------------------------------------------

def parse_name(name, tag):
    """(registry host or None, repository, tag) from an image name and tag; OciError when invalid."""
    first, slash, rest = (name or "").partition("/")
    # Like Docker: a first part with '.' or ':' (or 'localhost') is a registry host, not a path part.
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = None, name or ""
    if (registry and not _HOST_RE.match(registry)) or not _REPOSITORY_RE.match(repository):
        raise OciError("image name %r is not valid: use lowercase letters, digits and separators (. _ -) in "
                       "slash-separated parts, optionally after a registry host:port, e.g. "
                       "127.0.0.1:5000/team/service" % name)
    if not _TAG_RE.match(tag or ""):
        raise OciError("image tag %r is not valid: a tag is 1 to 128 letters, digits, '_', '.' or '-' and cannot "
                       "start with '.' or '-', e.g. 1.0.0" % tag)
    return registry, repository, tag


# ---- registry client (distribution API v2) ------------------------------------------------------

def _origin(url):
    """(scheme, host, port) of a URL: the scope of the credentials given for a registry."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or (443 if parts.scheme == "https" else 80)


class Registry(object):
    """Just enough of the distribution API to push and pull one image: blobs, then the manifest."""

    def __init__(self, host, username=None, password=None, insecure=False, timeout=60):
        self.host = host
        self.scheme = "http" if insecure or _LOOPBACK.match(host) else "https"
        self.username, self.password, self.timeout = username, password, timeout
        self.authorization = None
        self.origin = _origin(self._url("/"))
        self._connections, self._responses, self._ssl_context = {}, {}, None

    def _url(self, path):
        return "%s://%s%s" % (self.scheme, self.host, path)

    def _connection(self, origin):
        """The kept-alive connection to one origin, made on first use.

        One connection per origin for the client's life: a push is a dozen small requests, and a new connection
        with a new TLS context for each (open_url's way) cost more than the upload itself.
        """
        connection = self._connections.get(origin)
        if connection is None:
            scheme, host, port = origin
            if scheme == "https":
                if self._ssl_context is None:
                    self._ssl_context = ssl.create_default_context()
                connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._ssl_context)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
            self._connections[origin] = connection
        return connection

    def close(self):
        """Close the kept-alive connections (they are opened again when needed)."""
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        self._responses.clear()

    def _send(self, method, url, data, headers):
        """One request on the origin's kept-alive connection; the response, whatever its status.

        A connection the server closed while idle is opened again once; a response the caller did not read to
        the end leaves its connection unusable, so that connection is opened again too.
        """
        origin = _origin(url)
        parts = urlsplit(url)
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        for attempt in (1, 2):
            connection = self._connection(origin)
            previous = self._responses.pop(origin, None)
            reused = connection.sock is not None
            if previous is not None and not previous.isclosed():
                connection.close()
                reused = False
            try:
                connection.request(method, target, body=data, headers=headers)
                response = connection.getresponse()
            except (http.client.HTTPException, OSError) as exc:
                connection.close()
                stale = isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))
                if attempt == 1 and reused and stale:
                    continue
                raise URLError(exc)
            self._responses[origin] = response
            return response
        raise URLError("connection to %s closed" % url)  # not reached

    def _open(self, method, url, data=None, headers=None):
        """A request that follows redirects itself, sending Authorization only to the registry's own origin.

        Returns the response of a 2xx answer, to be read to its end; raises HTTPError for any other status and
        URLError when the registry cannot be reached. urllib would copy the header to wherever a redirect
        points; Docker's client drops it when the host changes (blob storage, a CDN, or a hostile Location),
        and so does this.
        """
        for _hop in range(MAX_REDIRECTS + 1):
            if urlsplit(url).scheme not in ("http", "https"):
                raise OciError("registry %s sent the client to %s, which is not an http or https URL; check the "
                               "registry's configuration" % (self.host, url.split("?")[0][:200]))
            sent = {"User-Agent": USER_AGENT}
            sent.update(headers or {})
            if self.authorization and _origin(url) == self.origin:
                sent["Authorization"] = self.authorization
            response = self._send(method, url, data, sent)
            if 200 <= response.status < 300:
                return response
            # The body of an error or a redirect is small; read to its end, it leaves the connection usable (a
            # longer one is cut, and _send then opens the connection again).
            body = response.read(MAX_ERROR_BODY)
            location = response.headers.get("Location") if response.status in (301, 302, 303, 307, 308) else None
            if not location:
                raise HTTPError(url, response.status, response.reason, response.headers, io.BytesIO(body))
            url = urljoin(url, location)
            if response.status == 303 or (response.status in (301, 302) and method not in ("GET", "HEAD")):
                method, data = "GET", None
        raise OciError("registry %s redirected more than %d times; check the registry's configuration"
                       % (self.host, MAX_REDIRECTS))

    def request(self, method, path_or_url, data=None, headers=None, ok=(200, 201, 202, 204)):
        """Send one request, authenticating on a 401 challenge; returns (status, headers, body)."""
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        for attempt in (1, 2):
            try:
                response = self._open(method, url, data, headers)
                return response.status, response.headers, response.read()
            except HTTPError as exc:
                if exc.code == 401 and attempt == 1 and _origin(exc.geturl() or url) == self.origin:
                    self._authenticate(exc.headers.get("WWW-Authenticate", ""))
                    continue
                if exc.code == 401:
                    raise OciError("registry %s refused the credentials%s; check registry_username and "
                                   "registry_password" % (self.host, " of user %s" % self.username
                                                          if self.username else " (none were given)"))
                if exc.code in ok or exc.code == 404:
                    return exc.code, exc.headers, exc.read()
                raise OciError("registry %s answered %s %s to %s %s: %s; check the image name and the registry"
                               % (self.host, exc.code, exc.reason, method, url.split("?")[0],
                                  exc.read()[:200].decode("utf-8", "replace").strip()))
            except (URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise OciError("cannot reach registry %s (%s); check that it runs and that the host:port in the "
                               "image name is right" % (self.host, reason))
        raise OciError("registry %s kept asking for credentials" % self.host)  # not reached

    def _authenticate(self, challenge):
        if not self.username:
            raise OciError("registry %s needs credentials; set registry_username and registry_password" % self.host)
        basic = "Basic " + base64.b64encode(("%s:%s" % (self.username, self.password or "")).encode()).decode()
        if challenge.lower().startswith("bearer"):
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            query = urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
            try:
                response = open_url(params["realm"] + "?" + query, headers={"Authorization": basic},
                                    timeout=self.timeout, use_proxy=False)
                token = json.loads(response.read())
            except HTTPError:
                raise OciError("registry %s refused the credentials of user %s; check registry_username and "
                               "registry_password" % (self.host, self.username))
            except (URLError, OSError, ValueError, KeyError) as exc:
                raise OciError("cannot get a token for registry %s (%s)" % (self.host, exc))
            self.authorization = "Bearer " + (token.get("token") or token.get("access_token", ""))
        else:
            self.authorization = basic

    def manifest_digest(self, repository, reference):
        status, headers, body = self.request(
            "GET", "/v2/%s/manifests/%s" % (repository, reference),
            headers={"Accept": ", ".join((MEDIA_MANIFEST, MEDIA_INDEX,
                                          "application/vnd.docker.distribution.manifest.v2+json"))})
        if status == 404:
            return None
        return headers.get("Docker-Content-Digest") or digest_of(body)

    def blob_exists(self, repository, digest):
        return self.request("HEAD", "/v2/%s/blobs/%s" % (repository, digest))[0] == 200

    def upload_blob(self, repository, digest, data):
        status, headers, body = self.request("POST", "/v2/%s/blobs/uploads/" % repository, data=b"")
        location = headers.get("Location") if status == 202 else None
        if not location:
            raise OciError("registry %s did not start an upload for %s (HTTP %s)" % (self.host, repository, status))
        # Relative to the registry; may name another host, which then gets no credentials (see _open).
        location = urljoin(self._url("/"), location)
        separator = "&" if "?" in location else "?"
        self.request("PUT", location + separator + urlencode({"digest": digest}), data=data,
                     headers={"Content-Type": "application/octet-stream"})

    def push(self, image, repository, tag):
        """Upload the missing blobs and the manifest; returns the number of blobs uploaded."""
        uploaded = 0
        for digest, data in _all_blobs(image):
            if not self.blob_exists(repository, digest):
                self.upload_blob(repository, digest, data)
                uploaded += 1
        self.request("PUT", "/v2/%s/manifests/%s" % (repository, tag), data=image.manifest_bytes,
                     headers={"Content-Type": MEDIA_MANIFEST})
        return uploaded
