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
import io
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlencode, urljoin
from ansible.module_utils.urls import open_url

from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import replace_directory

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

# Docker's reference grammar (distribution/reference), reduced to what a push needs.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_HOST_RE = re.compile(r"^%s$" % _HOST)
_REPOSITORY_RE = re.compile(r"^%s(?:/%s)*$" % (_COMPONENT, _COMPONENT))
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_LOOPBACK = re.compile(r"^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$")


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
    """One gzip-compressed layer; `tar` is kept for listing, `blob` is what ships."""

    def __init__(self, entries, mtime, role):
        self.role = role
        self.entries = _with_parents(entries)
        self.tar = _tar_bytes(self.entries, mtime)
        self.diff_id = digest_of(self.tar)
        self.blob = gzip_bytes(self.tar)
        self.digest = digest_of(self.blob)
        self.size = len(self.blob)

    def paths(self):
        return [entry.path for entry in self.entries]


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
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as stream:
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
            "layers": base_layers + [{"mediaType": MEDIA_LAYER, "digest": layer.digest, "size": layer.size}
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
    """An image read back from an OCI layout directory (used as a base, e.g. the Swift runtime)."""

    def __init__(self, directory):
        self.directory = directory
        try:
            with open(os.path.join(directory, "index.json"), "rb") as handle:
                index = json.load(handle)
            self.digest = index["manifests"][0]["digest"]
            self.manifest = json.loads(self._read(self.digest))
            self.config_bytes = self._read(self.manifest["config"]["digest"])
            self.config = json.loads(self.config_bytes)
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise OciError("%s is not a readable OCI image layout (%s); build the base image into it with "
                           "swiftlinux.deploy.oci_image format=oci-layout" % (directory, exc))

    def _read(self, digest):
        with open(os.path.join(self.directory, "blobs", *digest.split(":", 1)), "rb") as handle:
            return handle.read()

    def layer_descriptors(self):
        return list(self.manifest["layers"])

    def diff_ids(self):
        return list(self.config["rootfs"]["diff_ids"])

    def history(self):
        return list(self.config.get("history", []))

    def labels(self):
        return dict(self.config.get("config", {}).get("Labels") or {})

    def blob(self, digest):
        return self._read(digest)


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
        if os.path.isdir(path):
            with open(os.path.join(path, "index.json"), "rb") as handle:
                return json.load(handle)["manifests"][0]["digest"]
        if os.path.isfile(path):
            with tarfile.open(path) as archive:
                return json.load(archive.extractfile("index.json"))["manifests"][0]["digest"]
    except (OSError, ValueError, KeyError, IndexError, tarfile.TarError, AttributeError):
        return None
    return None


PLATFORM_MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "arm": "armv7l", "386": "i686", "ppc64le": "ppc64le",
                     "s390x": "s390x", "riscv64": "riscv64"}


def _member_sha256(archive, member):
    digest = hashlib.sha256()
    stream = archive.extractfile(member)
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _named_digest(name):
    """The sha256 hex an archive member's name claims (blobs/sha256/<hex>, <hex>.json or <hex>/layer.tar)."""
    parts = name.replace(".json", "").split("/")
    candidates = [part for part in parts if len(part) == 64 and all(c in "0123456789abcdef" for c in part)]
    return candidates[-1] if candidates else None


def read_archive(path):
    """What a deploy needs from an image archive (`docker save` or swiftlinux.deploy.oci_image format=archive).

    Every blob is checked against the digest its name (or the config's diff_ids) claims, so a truncated
    or altered archive is refused before it reaches a host.
    """
    if not os.path.isfile(path):
        raise OciError("image archive %s does not exist; write it with swiftlinux.deploy.oci_image format=archive "
                       "or docker save, or fix the path" % path)
    try:
        archive = tarfile.open(path)
    except (OSError, tarfile.TarError) as exc:
        raise OciError("%s is not a readable image archive (%s); write one with swiftlinux.deploy.oci_image "
                       "format=archive or docker save" % (path, exc))
    with archive:
        try:
            manifest = json.load(archive.extractfile("manifest.json"))[0]
            config_bytes = archive.extractfile(manifest["Config"]).read()
            config = json.loads(config_bytes)
            members = {member: archive.getmember(member) for member in manifest["Layers"]}
        except (KeyError, IndexError, ValueError, TypeError, AttributeError, tarfile.TarError) as exc:
            raise OciError("%s has no readable docker manifest.json and config (%s); write it with "
                           "swiftlinux.deploy.oci_image format=archive or docker save" % (path, exc))
        image_id = hashlib.sha256(config_bytes).hexdigest()
        if _named_digest(manifest["Config"]) not in (None, image_id):
            raise OciError("%s: the image config %s does not match its digest; the archive is damaged or was "
                           "altered, write it again" % (path, manifest["Config"]))
        diff_ids = [d.split(":", 1)[-1] for d in config.get("rootfs", {}).get("diff_ids", [])]
        for index, (name, member) in enumerate(members.items()):
            actual = _member_sha256(archive, member)
            expected = [d for d in (_named_digest(name), diff_ids[index] if index < len(diff_ids) else None) if d]
            if actual not in expected:
                raise OciError("%s: layer %s has sha256 %s, not %s as the image records; the archive is damaged or "
                               "was altered, write it again" % (path, name, actual, " or ".join(expected) or "?"))
    runtime = config.get("config") or {}
    health = (runtime.get("Healthcheck") or {}).get("Test") or []
    return {
        "image_id": "sha256:" + image_id,
        "repo_tags": list(manifest.get("RepoTags") or []),
        "os": config.get("os"),
        "architecture": config.get("architecture"),
        "machine": PLATFORM_MACHINES.get(config.get("architecture"), config.get("architecture")),
        "user": runtime.get("User") or "",
        "entrypoint": list(runtime.get("Entrypoint") or []),
        "command": list(runtime.get("Cmd") or []),
        "exposed_ports": sorted(int(port.split("/")[0]) for port in runtime.get("ExposedPorts") or {}),
        "healthcheck": health[1:] if health[:1] == ["CMD"] else health,
        "labels": dict(runtime.get("Labels") or {}),
        "layers": len(manifest["Layers"]),
        "size": os.path.getsize(path),
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

class Registry(object):
    """Just enough of the distribution API to push and pull one image: blobs, then the manifest."""

    def __init__(self, host, username=None, password=None, insecure=False, timeout=60):
        self.host = host
        self.scheme = "http" if insecure or _LOOPBACK.match(host) else "https"
        self.username, self.password, self.timeout = username, password, timeout
        self.authorization = None

    def _url(self, path):
        return "%s://%s%s" % (self.scheme, self.host, path)

    def _open(self, method, url, data=None, headers=None):
        headers = dict(headers or {})
        if self.authorization:
            headers["Authorization"] = self.authorization
        return open_url(url, method=method, data=data, headers=headers, timeout=self.timeout,
                        follow_redirects="all", validate_certs=True, use_proxy=False)

    def request(self, method, path_or_url, data=None, headers=None, ok=(200, 201, 202, 204)):
        """Send one request, authenticating on a 401 challenge; returns (status, headers, body)."""
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        for attempt in (1, 2):
            try:
                response = self._open(method, url, data, headers)
                return response.getcode(), response.headers, response.read()
            except HTTPError as exc:
                if exc.code == 401 and attempt == 1:
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
