"""Unit tests for _image_build's choices (compression, layer cache) and _oci's layer blobs, on real files."""
from __future__ import annotations

import gzip
import hashlib

import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _image_plan as plans
from ansible_collections.swiftlinux.deploy.plugins.module_utils._image_build import compression_for, layer_cache_for
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import (
    HAS_ZSTD, LAYER_MEDIA, Layer, LayerCache, OciError, file_entry,
)


def params(**changes) -> dict:
    return {"compression": "auto", "push": False, "format": "oci-layout", "layer_cache": "", "layer_cache_max_age": 30,
            **changes}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, "gzip"),                                        # an OCI layout is usually copied on
    ({"format": "archive"}, "none"),                     # docker load unpacks it anyway
    ({"format": "archive", "push": True}, "gzip"),       # one image for both: the registry's needs win
    ({"format": "context"}, "none"),
    ({"format": "archive", "compression": "gzip"}, "gzip"),
    ({"compression": "none", "push": True}, "none"),
])
def test_auto_compresses_only_for_a_destination_that_needs_it(changes, expected):
    assert compression_for(params(**changes)) == expected


def test_zstd_is_refused_for_an_archive_docker_20_cannot_load():
    with pytest.raises(OciError, match="cannot go in an archive.*use compression gzip or none"):
        compression_for(params(compression="zstd", format="archive"))


def test_layer_cache_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OciError, match="is not a directory"):
        layer_cache_for(params(layer_cache=str(tmp_path / "file")), False)
    assert layer_cache_for(params(), False) is None
    assert not layer_cache_for(params(layer_cache=str(tmp_path / "c")), True).writable, "check mode writes nothing"
    with pytest.raises(OciError, match="layer_cache_max_age is -1; give the days"):
        layer_cache_for(params(layer_cache=str(tmp_path / "c"), layer_cache_max_age=-1), False)


def entries():
    return [file_entry("app/x", data=b"\x7fELF" + bytes(range(256)) * 64, mode=0o755)]


def test_a_cached_blob_is_reused_and_is_the_same_bytes(tmp_path):
    cache = LayerCache(str(tmp_path / "cache"))
    cold = Layer(entries(), 0, "app", "gzip", cache)
    warm = Layer(entries(), 0, "app", "gzip", cache)
    assert (cold.cached, warm.cached) == (False, True) and cache.hits == 1
    assert warm.blob == cold.blob and warm.digest == cold.digest
    assert (tmp_path / "cache" / "gzip-1" / cold.diff_id.split(":")[1]).read_bytes() == cold.blob
    assert gzip.decompress(warm.blob) == cold.tar


def test_a_read_only_cache_is_read_but_never_written(tmp_path):
    Layer(entries(), 0, "app", "gzip", LayerCache(str(tmp_path / "cache")))
    read_only = LayerCache(str(tmp_path / "other"), writable=False)
    assert not Layer(entries(), 0, "app", "gzip", read_only).cached
    assert not (tmp_path / "other").exists()


def test_uncompressed_layers_are_the_tar_itself(tmp_path):
    layer = Layer(entries(), 0, "app", "none", LayerCache(str(tmp_path / "cache")))
    assert layer.blob == layer.tar and layer.digest == layer.diff_id
    assert layer.media_type == LAYER_MEDIA["none"] == "application/vnd.oci.image.layer.v1.tar"
    assert not (tmp_path / "cache").exists(), "nothing to cache"


def test_zstd_blobs_are_reproducible():
    assert HAS_ZSTD, "zstandard is missing; it is pinned in requirements.txt, run make venv"
    import zstandard  # pylint: disable=import-outside-toplevel

    first, second = Layer(entries(), 0, "app", "zstd"), Layer(entries(), 0, "app", "zstd")
    assert first.digest == second.digest and first.media_type.endswith("+zstd")
    assert zstandard.ZstdDecompressor().decompress(first.blob) == first.tar
    assert hashlib.sha256(first.tar).hexdigest() == first.diff_id.split(":")[1]


def test_shared_layers_carry_a_fixed_time_and_the_app_layer_the_source_date():
    assert plans.layer_mtime("app", 1700000000) == 1700000000
    assert {plans.layer_mtime(role, 1700000000) for role in ("base", "tzdata", "backtracer", "runtime")} == {0}


def test_the_backtracer_is_a_layer_of_its_own(tmp_path):
    backtracer = tmp_path / "swift-backtrace-static"
    backtracer.write_bytes(b"\x7fELF")
    assert [e.path for e in plans.backtracer_entries(str(backtracer))] == ["app/swift-backtrace-static"]
    with pytest.raises(OciError, match="does not exist.*backtrace=false"):
        plans.backtracer_entries(str(tmp_path / "missing"))
