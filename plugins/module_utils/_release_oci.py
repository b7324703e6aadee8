# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A release (an artifact of swift_build or shared_objects) as an OCI artifact in a registry, and back.

The controller pushes it once (release_push); every host pulls it by digest (the release module), verifies every
blob against its digest and extracts it into a staging directory without Docker. The artifact has two layers:
"runtime" (a bag's lib/ and the Swift backtracer, the same from one code-only release to the next) and "program"
(everything else), so a code-only release moves only the program layer: the registry already holds the runtime
blob, and each host keeps the blobs of its releases in a content-addressed cache.

Everything read from a registry is untrusted: sizes are capped, digests checked before use, and a layer may only
hold directories, regular files and relative symbolic links that stay inside the release.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import tarfile

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _oci
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import hash_stream
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import OciError

ARTIFACT_TYPE = "application/vnd.swiftlinux.release.v1"
MEDIA_CONFIG = "application/vnd.swiftlinux.release.config.v1+json"
LAYER_TITLE = "org.opencontainers.image.title"
ROLES = ("runtime", "program")
MAX_LAYERS = 2
MAX_LAYER_BYTES = 4 << 30
MAX_MEMBERS = 100000
CHUNK = 1 << 20
_REFERENCE = re.compile(r"^(?P<host>[^/@]+)/(?P<repository>[^@]+)@(?P<digest>sha256:[0-9a-f]{64})\Z")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(r"^%s(?:/%s)*\Z" % (_COMPONENT, _COMPONENT))
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?\Z")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_HEX = re.compile(r"^[0-9a-f]{64}\Z")
_KINDS = {tarfile.LNKTYPE: "hard link", tarfile.FIFOTYPE: "FIFO", tarfile.CHRTYPE: "device", tarfile.BLKTYPE: "device"}


class ReleaseRegistry(_oci.Registry):
    """The registry client of oci_image, plus a streamed GET for blobs (credentials scoped as for every request)."""

    def stream(self, path):
        return self._open("GET", self._url(path))


def layer_role(path):
    """runtime for what stays the same across code-only releases (a bag's lib/, the backtracer), else program."""
    return "runtime" if path.split("/", 1)[0] == "lib" or os.path.basename(path).startswith("swift-backtrace") \
        else "program"


def release_layers(root, files, links):
    """The artifact's layers, runtime first (omitted when empty): deterministic gzip tars (mtime 0, root owner)."""
    entries = dict((role, []) for role in ROLES)
    for path in sorted(files):
        mode = stat.S_IMODE(os.lstat(os.path.join(root, path)).st_mode) & 0o755
        entries[layer_role(path)].append(_oci.file_entry(path, source=os.path.join(root, path), mode=mode))
    for path, target in sorted(links.items()):
        entries[layer_role(path)].append(_oci.symlink_entry(path, target))
    return [_oci.Layer(entries[role], 0, role) for role in ROLES if entries[role]]


def release_manifest(layers, description):
    """(config bytes, manifest bytes) of the OCI artifact: the artifact's description as config, then the layers."""
    config = _oci.canonical_json(description)
    manifest = {
        "schemaVersion": 2,
        "mediaType": _oci.MEDIA_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _oci.digest_of(config), "size": len(config)},
        "layers": [{"mediaType": _oci.MEDIA_LAYER, "digest": layer.digest, "size": layer.size,
                    "annotations": {LAYER_TITLE: layer.role}} for layer in layers],
    }
    return config, _oci.canonical_json(manifest)


def push(registry, repository, tag, blobs, manifest, check_mode=False):
    """Upload the blobs the registry lacks and the manifest under tag; returns (bytes uploaded, changed)."""
    digest = _oci.digest_of(manifest)
    if registry.manifest_digest(repository, tag) == digest:
        return 0, False
    uploaded = 0
    for blob_digest, data in blobs:
        if not registry.blob_exists(repository, blob_digest):
            uploaded += len(data)
            if not check_mode:
                registry.upload_blob(repository, blob_digest, data)
    if not check_mode:
        registry.request("PUT", "/v2/%s/manifests/%s" % (repository, tag), data=manifest,
                         headers={"Content-Type": _oci.MEDIA_MANIFEST})
    return uploaded, True


def parse_reference(reference):
    """(registry host, repository, digest) of host/repository@sha256:<hex>; a tag is not enough."""
    match = _REFERENCE.match(reference or "")
    if not match or not _REPOSITORY.match(match.group("repository")) or not _HOST.match(match.group("host")):
        raise OciError("pull reference %r is not host[:port]/repository@sha256:<64 hex digits>; hosts pull a "
                       "release by digest, as release_push returns it in `reference`" % (reference,))
    return match.group("host"), match.group("repository"), match.group("digest")


def _check_manifest(body, digest):
    if _oci.digest_of(body) != digest:
        raise OciError("the registry answered with a manifest whose digest is %s, not the %s asked for; the registry "
                       "or something between it and the host changed it, so nothing was used"
                       % (_oci.digest_of(body), digest))
    try:
        manifest = json.loads(body)
        layers = manifest["layers"]
        shaped = manifest.get("artifactType") == ARTIFACT_TYPE and isinstance(layers, list) \
            and 1 <= len(layers) <= MAX_LAYERS and all(_layer_shaped(layer) for layer in layers)
    except (ValueError, KeyError, TypeError, AttributeError):
        shaped = False
    if not shaped:
        raise OciError("%s is not a swiftlinux release (%s with at most %d gzip layers); push the artifact with "
                       "swiftlinux.deploy.release_push" % (digest, ARTIFACT_TYPE, MAX_LAYERS))
    return layers


def _layer_shaped(layer):
    return isinstance(layer, dict) and layer.get("mediaType") == _oci.MEDIA_LAYER \
        and isinstance(layer.get("digest"), str) and bool(_DIGEST.match(layer["digest"])) \
        and isinstance(layer.get("size"), int) and not isinstance(layer["size"], bool) \
        and 0 <= layer["size"] <= MAX_LAYER_BYTES


def fetch_manifest(registry, repository, digest):
    status, dummy, body = registry.request("GET", "/v2/%s/manifests/%s" % (repository, digest),
                                           headers={"Accept": _oci.MEDIA_MANIFEST})
    if status == 404:
        raise OciError("registry %s has no %s@%s; push the release first (swiftlinux.deploy.release_push)"
                       % (registry.host, repository, digest))
    if len(body) > _oci.MAX_DOCUMENT:
        raise OciError("the manifest of %s is %d bytes, more than a release manifest can be" % (digest, len(body)))
    return _check_manifest(body, digest)


def _fetch_blob(registry, repository, layer, path):
    """Stream one blob into path, never more than its declared size, and check its digest; returns bytes read."""
    partial = path + ".partial"
    digest = hashlib.sha256()
    total = 0
    try:
        response = registry.stream("/v2/%s/blobs/%s" % (repository, layer["digest"]))
        with open(partial, "wb") as out:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > layer["size"]:
                    raise OciError("blob %s is larger than the %d bytes its manifest says; nothing was used"
                                   % (layer["digest"], layer["size"]))
                digest.update(chunk)
                out.write(chunk)
        if "sha256:" + digest.hexdigest() != layer["digest"]:
            raise OciError("blob %s arrived with digest sha256:%s; the registry or the network changed it, so "
                           "nothing was used" % (layer["digest"], digest.hexdigest()))
        os.replace(partial, path)
        return total
    except HTTPError as exc:
        raise OciError("registry %s answered %s to the blob %s; push the release again"
                       % (registry.host, exc.code, layer["digest"]))
    except (URLError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, URLError) and exc.filename:
            raise OciError("could not write %s: %s" % (exc.filename, exc.strerror))
        raise OciError("cannot reach registry %s (%s)" % (registry.host, getattr(exc, "reason", exc)))
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _cached(path, digest):
    """Whether the cache holds this blob intact (it is hashed again: the cache is on the host's disk)."""
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    with open(path, "rb") as handle:
        return "sha256:" + hash_stream(handle)[0][0] == digest


def pull(registry, repository, digest, cache, staging):
    """Fetch the release's blobs (from the cache when there) and extract them into staging, which must not exist.

    Returns dict(layers=[{digest, size, role, fetched}], fetched_bytes).
    """
    layers = fetch_manifest(registry, repository, digest)
    blobs = os.path.join(cache, "sha256")
    os.makedirs(blobs, mode=0o700, exist_ok=True)
    fetched_bytes, done = 0, []
    for layer in layers:
        path = os.path.join(blobs, layer["digest"].split(":", 1)[1])
        fetched = not _cached(path, layer["digest"])
        if fetched:
            fetched_bytes += _fetch_blob(registry, repository, layer, path)
        done.append(dict(digest=layer["digest"], size=layer["size"], fetched=fetched,
                         role=(layer.get("annotations") or {}).get(LAYER_TITLE, "")))
    os.mkdir(staging, 0o755)
    for layer in done:
        extract(os.path.join(blobs, layer["digest"].split(":", 1)[1]), staging)
    return dict(layers=done, fetched_bytes=fetched_bytes)


def record_release(cache, release_id, layers):
    """Note which blobs a release came from, so prune_cache keeps them while the release exists."""
    refs = os.path.join(cache, "releases")
    os.makedirs(refs, mode=0o700, exist_ok=True)
    with open(os.path.join(refs, release_id), "w") as handle:
        handle.write("\n".join(layer["digest"] for layer in layers) + "\n")


def prune_cache(cache, releases_dir):
    """Remove the blobs and records of releases that are gone; only names this module writes are touched."""
    refs, blobs = os.path.join(cache, "releases"), os.path.join(cache, "sha256")
    keep = set()
    for name in (os.listdir(refs) if os.path.isdir(refs) else []):
        record = os.path.join(refs, name)
        if os.path.isdir(os.path.join(releases_dir, name)):
            with open(record) as handle:
                keep.update(line.strip().split(":", 1)[-1] for line in handle if line.strip())
        elif re.match(r"^[A-Za-z0-9._-]+\Z", name) and os.path.isfile(record):
            os.unlink(record)
    removed = []
    for name in (os.listdir(blobs) if os.path.isdir(blobs) else []):
        if _HEX.match(name) and name not in keep:
            os.unlink(os.path.join(blobs, name))
            removed.append("sha256:" + name)
    return removed


def _inside(name):
    """A member name as a relative path inside the release, or None when it is absolute or climbs out."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return None
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def extract(blob, staging, compressed=True):
    """Extract a tar layer (gzip unless compressed is False) into staging: directories, regular files and relative
    links that stay inside.

    Any other member (a hard link, a device, a FIFO, an absolute or climbing path, a link that leads out) stops the
    extraction with an OciError, and nothing below a symbolic link is ever written.
    """
    count = 0
    try:
        with tarfile.open(blob, mode="r:gz" if compressed else "r:") as archive:
            for member in archive:
                count += 1
                if count > MAX_MEMBERS:
                    raise OciError("the layer holds more than %d entries; it is not a release" % MAX_MEMBERS)
                name = _inside(member.name)
                if name is None:
                    raise OciError("the layer holds %r, a path outside the release; nothing of it was used"
                                   % member.name[:200])
                target = os.path.join(staging, name)
                _check_parents(staging, name)
                if member.isdir():
                    if not os.path.isdir(target) or os.path.islink(target):
                        os.mkdir(target, 0o755)
                elif member.isfile():
                    if os.path.isdir(target) and not os.path.islink(target):
                        raise OciError("the layer holds %s as a file and as a directory; nothing of it was used" % name)
                    if os.path.lexists(target):  # a later layer replaces an earlier layer's file, as in OCI
                        os.unlink(target)
                    source = archive.extractfile(member)
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                 member.mode & 0o755 | 0o400)
                    with os.fdopen(fd, "wb") as out:
                        while True:
                            chunk = source.read(CHUNK)
                            if not chunk:
                                break
                            out.write(chunk)
                    os.chmod(target, member.mode & 0o755 | 0o400)
                elif member.issym():
                    link = member.linkname
                    resolved = _inside(os.path.normpath(os.path.join(os.path.dirname(name), link))) \
                        if link and not link.startswith("/") else None
                    if resolved is None:
                        raise OciError("the layer links %s to %r, which leads outside the release; nothing of it "
                                       "was used" % (name, link[:200]))
                    if os.path.lexists(target):
                        raise OciError("the layer holds %s twice; nothing of it was used" % name)
                    os.symlink(link, target)
                else:
                    raise OciError("the layer holds %s, a %s; a release holds only files, directories and links"
                                   % (name, _KINDS.get(member.type, "special file")))
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OciError) or getattr(exc, "errno", None) == errno.ENOSPC:
            raise  # a full disk is the host's problem, not the layer's: the caller says so
        raise OciError("could not extract a layer of the release: %s" % (getattr(exc, "strerror", None) or exc))


def _check_parents(staging, name):
    """Every directory above name inside staging must be a real directory (or not exist yet), never a link."""
    current = staging
    for part in name.split("/")[:-1]:
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise OciError("the layer writes below %s, a symbolic link; nothing of it was used"
                           % os.path.relpath(current, staging))
        if not os.path.exists(current):
            os.mkdir(current, 0o755)
