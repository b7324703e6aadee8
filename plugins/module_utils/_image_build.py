# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""From an image plan to its outputs: layers, the image, an OCI layout, an archive, a build context, a push.

oci_image calls build_image once; everything it decides (what is written, what is pushed, what changed) is
here, so the module stays an adapter. Private to this collection.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _image_plan as plans
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import check_replaceable, replace_directory
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import (
    HAS_ZSTD, Image, Layer, LayerCache, OciError, Registry, check_archive_replaceable, existing_digest, parse_name,
    write_archive, write_layout,
)

COMPRESSIONS = ("auto", "gzip", "zstd", "none")


def compression_for(params):
    """The layer compression: the one asked for, or with auto the cheapest the destination takes.

    A registry stores what it is sent and every pull moves it, and an OCI layout is usually copied on, so
    both get gzip. An archive is read by `docker load` (which unpacks the layers anyway) on this machine or
    after a copy, so it gets none: compressing dominated the build time. A context is copied file by file.
    """
    wanted = params["compression"]
    if wanted == "auto":
        return "gzip" if params["push"] or params["format"] == "oci-layout" else "none"
    if wanted == "zstd":
        if params["format"] == "archive":
            raise OciError("compression=zstd cannot go in an archive: docker load (Docker 20.10 to 22) cannot unpack "
                           "zstd layers; use compression gzip or none for format=archive, or zstd with "
                           "format=oci-layout or push")
        if not HAS_ZSTD:
            raise OciError("compression=zstd needs the Python library zstandard where oci_image runs; install it "
                           "(pip install zstandard, see meta/ee-requirements.txt) or use compression gzip")
    return wanted


def layer_cache_for(params, check_mode):
    """The content-addressed blob cache, or None when layer_cache is empty (read-only in check mode)."""
    directory = params["layer_cache"]
    if not directory:
        return None
    if params["layer_cache_max_age"] < 0:
        raise OciError("layer_cache_max_age is %d; give the days a blob may go unused before it is removed, or 0 to "
                       "keep every blob" % params["layer_cache_max_age"])
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise OciError("layer_cache %s is not a directory; point it at a directory (it is created when absent) or "
                       "set it to an empty string to compress every layer afresh" % directory)
    return LayerCache(directory, writable=not check_mode)


def build_image(params, run, check_mode):
    """Plan, build and write or push the image `params` (oci_image's options) describe; the module's result.

    `run(argv)` returns (rc, stdout, stderr). Raises OciError, ElfError or NotOurs with one sentence, and
    OSError when dest cannot be written.
    """
    if not params["dest"] and not params["push"]:
        raise OciError("nothing to do: set dest to write the image, push=true to push it, or both")
    if params["format"] == "context" and params["push"]:
        raise OciError("format=context writes a Docker build context, which cannot be pushed; use format "
                       "oci-layout or archive with push=true")
    plans.check_config_inputs(params)
    compression = compression_for(params)
    cache = layer_cache_for(params, check_mode)
    epoch = plans.epoch_of(params)
    plan = plans.plan_image(params, run)
    tag = params["tag"] or plan["tag_default"]
    registry, repository, tag = parse_name(params["name"], tag)
    if params["push"] and not registry:
        raise OciError("push=true needs a registry host in name, for example 127.0.0.1:5000/%s" % repository)
    reference = "%s:%s" % (params["name"], tag)
    layers = _make_layers(plan["layers"], epoch, compression, cache)
    image = Image(layers, plan["platform"].split("/")[1], plan["config"], epoch, base=plan["base"])

    dest = params["dest"]
    before = None
    if dest:
        before = _context_digest(dest) if params["format"] == "context" else existing_digest(dest)
    write_needed = bool(dest) and before != image.digest
    if write_needed:
        # Before any write (and in check mode too): dest must be ours to replace.
        if params["format"] == "archive":
            check_archive_replaceable(dest)
        else:
            check_replaceable(dest, "oci_image")
    client = remote = None
    if params["push"]:
        client = Registry(registry, params["registry_username"], params["registry_password"],
                          params["registry_insecure"])
        remote = client.manifest_digest(repository, tag)
    push_needed = params["push"] and remote != image.digest
    try:
        if not check_mode:
            if write_needed and params["format"] == "oci-layout":
                write_layout(dest, image, tag, [reference])
            elif write_needed and params["format"] == "archive":
                write_archive(dest, image, tag, [reference], epoch)
            elif write_needed:
                write_context(dest, plan, image, reference)
            if push_needed:
                client.push(image, repository, tag)
    finally:
        if client is not None:
            client.close()
    pruned = 0
    if cache is not None and cache.writable and params["layer_cache_max_age"] > 0:
        pruned = cache.prune(params["layer_cache_max_age"] * 86400)

    result = dict(
        changed=write_needed or push_needed, digest=image.digest, image_id=image.config_digest, reference=reference,
        recipe=plan["recipe"], link_mode=plan["link_mode"], swift_version=plan["swift_version"],
        platform=plan["platform"], size=image.size(), compression=compression,
        files=sorted(path for layer in layers for path in layer.paths()), output=dest, pushed=bool(push_needed),
        layers=[{"role": "inherited", "digest": d["digest"], "size": d["size"], "diff_id": None}
                for d in (plan["base"].layer_descriptors() if plan["base"] else [])]
        + [{"role": layer.role, "digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size,
            "media_type": layer.media_type, "cached": layer.cached} for layer in layers],
        diff=dict(before={"digest": before or remote}, after={"digest": image.digest}), layer_cache_pruned=pruned,
    )
    if params["format"] == "context":
        result["plan"] = context_plan(plan)
    return result


def _make_layers(plan_layers, epoch, compression, cache):
    """The plan's layers, bottom first, made side by side: zlib, zstd and sha256 let go of the interpreter lock,
    so the backtracer and the program compress at once on two cores. The bytes do not depend on the order."""
    def make(item):
        role, entries = item
        return Layer(entries, plans.layer_mtime(role, epoch), role, compression, cache)

    items = list(plan_layers.items())
    if compression == "none" or len(items) < 2:
        return [make(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(make, items))


def write_context(dest, plan, image, reference):
    """A Docker build context: one directory per layer plus image.json; replaces dest only when complete."""
    parent = os.path.dirname(dest.rstrip("/")) or "/"
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".image-context-", dir=parent)
    try:
        for role, entries in plan["layers"].items():
            root = os.path.join(stage, role)
            os.mkdir(root)
            for entry in sorted(entries, key=lambda e: e.path):
                target = os.path.join(root, entry.path)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if entry.kind == "dir":
                    os.makedirs(target, exist_ok=True)
                elif entry.kind == "symlink":
                    os.symlink(entry.target, target)
                    continue
                elif entry.data is not None:
                    with open(target, "wb") as handle:
                        handle.write(entry.data)
                else:
                    shutil.copyfile(entry.source, target)
                os.chmod(target, entry.mode)
        record = {"digest": image.digest, "reference": reference, "plan": context_plan(plan)}
        with open(os.path.join(stage, "image.json"), "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
        replace_directory(stage, dest, "oci_image")
    finally:
        if os.path.isdir(stage):
            shutil.rmtree(stage)


def context_plan(plan):
    """What the Containerfile templates need, as image.json and the module's `plan` result carry it."""
    return dict(plans.containerfile_args(plan["config"]), recipe=plan["recipe"], layers=list(plan["layers"]),
                config=plan["config"], base_image=plan["base_image"])


def _context_digest(dest):
    try:
        with open(os.path.join(dest, "image.json")) as handle:
            return json.load(handle)["digest"]
    except (OSError, ValueError, KeyError):
        return None
