"""Unit tests for _oci (layers, digests, layout, references, the registry client) and _image_plan's file rules, on real files."""
from __future__ import annotations

import base64
import gzip
import io
import json
import os
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _image_plan as recipes
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import (
    Image, Layer, LayerCache, LoadedImage, OciError, Registry, dir_entry, existing_digest, file_entry, parse_name, symlink_entry,
    tree_entries, write_archive, write_layout,
)


def members(layer: Layer) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer.tar)) as archive:
        return archive.getmembers()


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "b").mkdir(parents=True)
    (root / "b" / "z.txt").write_text("z")
    (root / "a.txt").write_text("a")
    (root / "link").symlink_to("a.txt")
    os.chmod(root / "a.txt", 0o600)
    return root


def test_layer_tar_is_sorted_owned_by_root_and_stamped_with_one_time(tree):
    layer = Layer(tree_entries(str(tree), "/app") + [file_entry("etc/passwd", data=b"x\n")], 1234, "app")
    infos = members(layer)
    names = [info.name.rstrip("/") for info in infos]
    assert names == sorted(names)
    assert names == ["app", "app/a.txt", "app/b", "app/b/z.txt", "app/link", "etc", "etc/passwd"]
    assert {(i.uid, i.gid, i.uname, i.gname, i.mtime) for i in infos} == {(0, 0, "", "", 1234)}
    by_name = {info.name.rstrip("/"): info for info in infos}
    assert by_name["app/a.txt"].mode == 0o600 and by_name["app/link"].linkname == "a.txt"
    assert by_name["etc"].isdir() and by_name["etc"].mode == 0o755, "parents are added"


def test_same_inputs_same_digests_whatever_the_file_times(tree):
    first = Layer(tree_entries(str(tree), "/app"), 0, "app")
    os.utime(tree / "a.txt", (1, 1))
    second = Layer(tree_entries(str(tree), "/app"), 0, "app")
    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)
    assert Layer(tree_entries(str(tree), "/app"), 1, "app").digest != first.digest


def test_gzip_header_has_no_name_and_no_time(tree):
    blob = Layer(tree_entries(str(tree), "/app"), 0, "app").blob
    assert blob[:3] == b"\x1f\x8b\x08"
    assert blob[3] & 0x08 == 0, "FNAME flag must be clear"
    assert blob[4:8] == b"\0\0\0\0", "MTIME must be zero"
    assert gzip.decompress(blob)


def test_sticky_tmp_and_symlinks_survive():
    layer = Layer([dir_entry("tmp", 0o1777), symlink_entry("lib64/ld.so", "../usr/lib/ld.so")], 0, "base")
    by_name = {info.name.rstrip("/"): info for info in members(layer)}
    assert by_name["tmp"].mode == 0o1777
    assert by_name["lib64/ld.so"].issym() and by_name["lib64/ld.so"].linkname == "../usr/lib/ld.so"


def make_image(tmp_path, epoch=0) -> Image:
    layers = [Layer([file_entry("etc/passwd", data=b"root\n")], epoch, "base"),
              Layer([file_entry("app/x", data=b"\x7fELF", mode=0o755)], epoch, "app")]
    return Image(layers, "amd64", {"User": "65532:65532", "Entrypoint": ["/app/x"]}, epoch)


def test_image_config_and_manifest(tmp_path):
    image = make_image(tmp_path, epoch=86400)
    assert image.config["created"] == "1970-01-02T00:00:00Z"
    assert image.config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
    assert [d["digest"] for d in image.manifest["layers"]] == [layer.digest for layer in image.layers]
    assert image.digest == make_image(tmp_path, epoch=86400).digest
    assert image.digest != make_image(tmp_path, epoch=0).digest


def test_layout_and_archive_hold_the_same_image(tmp_path):
    image = make_image(tmp_path)
    write_layout(str(tmp_path / "layout"), image, "1.0", ["x/y:1.0"])
    write_archive(str(tmp_path / "image.tar"), image, "1.0", ["x/y:1.0"], 0)
    assert existing_digest(str(tmp_path / "layout")) == image.digest == existing_digest(str(tmp_path / "image.tar"))
    with tarfile.open(tmp_path / "image.tar") as archive:
        docker_manifest = json.load(archive.extractfile("manifest.json"))
        assert docker_manifest[0]["RepoTags"] == ["x/y:1.0"]
        assert archive.getnames() == sorted(archive.getnames())
    loaded = LoadedImage(str(tmp_path / "layout"))
    assert loaded.digest == image.digest and loaded.diff_ids() == image.diff_ids()
    on_top = Image([Layer([file_entry("app/y", data=b"y")], 0, "app")], "amd64", {}, 0, base=loaded)
    assert on_top.manifest["layers"][:2] == image.manifest["layers"]
    assert on_top.blob(image.layers[0].digest) == image.layers[0].blob


def test_archive_is_byte_identical_when_rebuilt(tmp_path):
    write_archive(str(tmp_path / "a.tar"), make_image(tmp_path), "1", ["x:1"], 0)
    write_archive(str(tmp_path / "b.tar"), make_image(tmp_path), "1", ["x:1"], 0)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_not_a_layout_is_one_sentence(tmp_path):
    with pytest.raises(OciError, match="is not a readable OCI image layout"):
        LoadedImage(str(tmp_path))
    assert existing_digest(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(("name", "tag", "expected"), [
    ("team/api", "1.0", (None, "team/api", "1.0")),
    ("api", "latest", (None, "api", "latest")),
    ("127.0.0.1:5000/team/api", "v2_rc.1", ("127.0.0.1:5000", "team/api", "v2_rc.1")),
    ("localhost/api", "x", ("localhost", "api", "x")),
    ("registry.example.com/a/b-c__d", "X", ("registry.example.com", "a/b-c__d", "X")),
])
def test_valid_references(name, tag, expected):
    assert parse_name(name, tag) == expected


@pytest.mark.parametrize(("name", "tag", "message"), [
    ("Team/api", "1", "image name"), ("team//api", "1", "image name"), ("", "1", "image name"),
    ("team/api", "", "image tag"), ("team/api", "a b", "image tag"), ("team/api", ".x", "image tag"),
    ("team/api", "x" * 129, "image tag"),
])
def test_invalid_references(name, tag, message):
    with pytest.raises(OciError, match=message):
        parse_name(name, tag)


# ---- _image_plan: what goes in, decided from files and facts ---------------------------------------

def test_resource_symlinks_inside_are_kept_absolute_ones_made_relative(tmp_path):
    bundle = tmp_path / "x.resources"
    (bundle / "sub").mkdir(parents=True)
    (bundle / "sub" / "data.txt").write_text("d")
    (bundle / "rel").symlink_to("sub/data.txt")
    (bundle / "abs").symlink_to(bundle / "sub" / "data.txt")
    entries = {e.path: e for e in recipes.resource_entries(str(bundle), "/app/x.resources")}
    assert entries["app/x.resources/rel"].target == "sub/data.txt"
    assert entries["app/x.resources/abs"].target == "sub/data.txt"


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside"])
def test_resource_symlinks_out_of_the_bundle_are_refused(tmp_path, target):
    bundle = tmp_path / "x.resources"
    bundle.mkdir()
    (tmp_path / "outside").write_text("o")
    (bundle / "escape").symlink_to(target)
    with pytest.raises(OciError, match="points outside the bundle"):
        recipes.resource_entries(str(bundle), "/app/x.resources")


def test_base_files_have_the_nonroot_user_and_a_sticky_tmp(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("cert")
    entries = {e.path: e for e in recipes.base_entries(65532, str(ca))}
    assert b"nonroot:x:65532:65532:" in entries["etc/passwd"].data
    assert b"nonroot:x:65532:" in entries["etc/group"].data
    assert entries["tmp"].mode == 0o1777
    assert "usr/share/zoneinfo" not in entries
    with pytest.raises(OciError, match="CA bundle"):
        recipes.base_entries(65532, str(tmp_path / "none"))


@pytest.mark.parametrize(("facts", "have_bag", "recipe"), [
    ({"linkage": "static", "needed": [], "swift_runtime": "static"}, False, "scratch-static"),
    ({"linkage": "static-pie", "needed": [], "swift_runtime": "static"}, False, "scratch-static"),
    ({"linkage": "dynamic", "needed": ["libc.so.6"], "swift_runtime": "static"}, False, "scratch-bag"),
    ({"linkage": "dynamic", "needed": ["libswiftCore.so"], "swift_runtime": "dynamic"}, False, "runtime-base"),
    ({"linkage": "dynamic", "needed": ["libswiftCore.so"], "swift_runtime": "dynamic"}, True, "scratch-bag"),
])
def test_recipe_follows_the_link_mode(facts, have_bag, recipe):
    assert recipes.choose_recipe(facts, have_bag) == recipe


def test_healthcheck_and_ports_in_the_config():
    health = {"command": ["/app/x", "--self-test"], "interval": 2, "timeout": 1, "retries": 3, "start_period": 4}
    config = recipes.image_config(65532, ["/app/x"], [], {"B": "2", "A": "1"}, {"l": "v"}, [8080, 80], health)
    assert config["Env"] == ["A=1", "B=2", "PATH=" + recipes.DEFAULT_PATH] and config["User"] == "65532:65532"
    assert list(config["ExposedPorts"]) == ["80/tcp", "8080/tcp"]
    assert config["Healthcheck"] == {"Test": ["CMD", "/app/x", "--self-test"], "Interval": 2 * 10**9,
                                     "Timeout": 10**9, "Retries": 3, "StartPeriod": 4 * 10**9}


def test_ports_alone_add_no_healthcheck():
    assert "Healthcheck" not in recipes.image_config(65532, ["/app/x"], [], {}, {}, [8080], None)


def valid_params(**changes):
    params = {"env": {}, "labels": {}, "user": 65532, "ports": [], "command": [], "source_date_epoch": None,
              "healthcheck": None}
    params.update(changes)
    return params


@pytest.mark.parametrize(("changes", "message"), [
    ({"env": {"A\nUSER 0:0": "x"}}, "env key 'A\\nUSER 0:0' is not a POSIX variable name"),
    ({"env": {"1A": "x"}}, "is not a POSIX variable name"),
    ({"env": {"A=B": "x"}}, "is not a POSIX variable name"),
    ({"labels": {"a\nb": "x"}}, "label key"),
    ({"labels": {"a=b": "x"}}, "label key"),
    ({"labels": {"": "x"}}, "label key"),
    ({"env": {"A": "x\0y"}}, "without NUL"),
    ({"user": -1}, "user -1 is not a numeric id"),
    ({"user": 2147483648}, "from 0 to 2147483647"),
    ({"ports": [0]}, "port 0 is not a TCP port"),
    ({"ports": [65536]}, "port 65536"),
    ({"command": ["a\0b"]}, "NUL character"),
    ({"source_date_epoch": -1}, "source_date_epoch -1 is out of range"),
    ({"source_date_epoch": 2 ** 32}, "source_date_epoch 4294967296 is out of range"),
    ({"healthcheck": {"kind": "http", "command": [], "interval": 1, "timeout": 1, "retries": 1, "start_period": 0}},
     "no shell, curl or other tool to probe http"),
    ({"healthcheck": {"kind": "command", "command": [], "interval": 1, "timeout": 1, "retries": 1,
                      "start_period": 0}}, "healthcheck needs command"),
    ({"healthcheck": {"kind": "command", "command": ["/app/x"], "interval": 0, "timeout": 1, "retries": 1,
                      "start_period": 0}}, "healthcheck interval is 0"),
])
def test_unsafe_config_inputs_are_refused_with_one_sentence(changes, message):
    with pytest.raises(OciError) as caught:
        recipes.check_config_inputs(valid_params(**changes))
    assert message in str(caught.value) and str(caught.value).count(". ") == 0


def test_hostile_but_valid_values_pass_and_travel_as_build_args():
    value = 'quote " back\\slash $HOME ${X} new\nline \u00e9\u2603'
    params = valid_params(env={"A_1": value}, labels={"com.example/x-y_z": value}, user=0, ports=[1, 65535],
                          source_date_epoch=2 ** 32 - 1)
    assert recipes.check_config_inputs(params) is None
    config = recipes.image_config(0, ["/app/x"], [], params["env"], params["labels"], params["ports"], None)
    args = recipes.containerfile_args(config)
    env = dict((key, args["build_args"][arg]) for key, arg in args["env"])
    labels = dict((key, args["build_args"][arg]) for key, arg in args["labels"])
    assert env["A_1"] == value and labels["com.example/x-y_z"] == value


# ---- registry client: kept-alive connections, credentials only for their origin -------------------------------

class FakeRegistry(ThreadingHTTPServer):
    """An HTTP/1.1 registry that wants Basic credentials (or none with `open`). `routes` maps (method, path prefix) to
    (status, headers[, body]); every request is recorded with its connection's number and its Authorization."""

    daemon_threads = True

    def __init__(self, routes=None, close_after_each=False, open=False):  # noqa: A002 - as the registry is called
        self.routes, self.close_after_each, self.open = routes or {}, close_after_each, open
        self.seen, self.connections = [], 0
        super().__init__(("127.0.0.1", 0), FakeRegistryHandler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self):
        self.shutdown()
        self.server_close()


class FakeRegistryHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.server.connections += 1
        self.connection_number = self.server.connections

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        authorization = self.headers.get("Authorization")
        self.server.seen.append((self.connection_number, self.command, self.path, authorization, len(body)))
        status, headers, payload = 404, {}, b'{"errors":[{"code":"UNKNOWN"}]}'
        if authorization != BASIC and not self.server.open:
            status, headers = 401, {"WWW-Authenticate": 'Basic realm="fake"'}
        else:
            for (method, prefix), answer in self.server.routes.items():
                if self.command == method and self.path.startswith(prefix):
                    status, headers = answer[:2]
                    payload = answer[2] if len(answer) > 2 else b""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value.replace("PORT", str(self.server.port)))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        # Closing without saying so: what a registry or a proxy does to an idle keep-alive connection.
        self.close_connection = self.server.close_after_each

    do_GET = do_HEAD = do_PUT = do_POST = _answer

    def log_message(self, *args):
        pass


BASIC = "Basic " + base64.b64encode(b"ci:hunter2").decode()
UPLOADS = {("POST", "/v2/team/app/blobs/uploads/"): (202, {"Location": "/upload/1"}),
           ("PUT", "/upload/1"): (201, {}),
           ("PUT", "/v2/team/app/manifests/"): (201, {})}


def small_image() -> Image:
    return Image([Layer([file_entry("app/x", data=b"x" * 1000, mode=0o755)], 0, "app")], "amd64", {}, 0)


def test_a_push_is_one_kept_alive_connection_and_credentials_go_only_there():
    registry = FakeRegistry(UPLOADS)
    try:
        client = Registry("127.0.0.1:%d" % registry.port, "ci", "hunter2")
        assert client.push(small_image(), "team/app", "v1") == 2  # config and layer
        client.close()
    finally:
        registry.stop()
    assert registry.connections == 1, registry.seen
    with_credentials = [seen[1] for seen in registry.seen if seen[3] == BASIC]
    assert with_credentials == ["HEAD", "POST", "PUT", "HEAD", "POST", "PUT", "PUT"]
    assert registry.seen[0][3] is None  # the first request learns from the 401 which credentials are wanted


def test_credentials_do_not_follow_a_redirect_to_another_host_or_port():
    elsewhere = FakeRegistry(open=True)
    registry = FakeRegistry({
        ("GET", "/v2/team/app/manifests/v1"): (307, {"Location": "http://localhost:%d/v2/moved" % elsewhere.port}),
        ("POST", "/v2/team/app/blobs/uploads/"): (202, {"Location": "http://127.0.0.1:%d/upload/1" % elsewhere.port}),
        ("PUT", "/v2/team/app/manifests/"): (201, {})})
    elsewhere.routes = {("GET", "/v2/moved"): (200, {}, b"{}"), ("PUT", "/upload/1"): (201, {})}
    same_server_by_another_name = FakeRegistry(open=True)
    registry.routes[("GET", "/v2/team/app/manifests/v2")] = (
        302, {"Location": "http://localhost:%d/v2/x" % same_server_by_another_name.port})
    try:
        client = Registry("127.0.0.1:%d" % registry.port, "ci", "hunter2")
        client.push(small_image(), "team/app", "v1")
        client.manifest_digest("team/app", "v1")
        client.manifest_digest("team/app", "v2")
    finally:
        for server in (registry, elsewhere, same_server_by_another_name):
            server.stop()
    assert any(seen[3] == BASIC for seen in registry.seen)
    digests = [small_image().config_digest, small_image().layers[0].digest]
    assert [seen[1:3] for seen in elsewhere.seen] == [("PUT", "/upload/1?digest=" + digest.replace(":", "%3A"))
                                                      for digest in digests] + [("GET", "/v2/moved")]
    assert all(seen[3] is None for seen in elsewhere.seen + same_server_by_another_name.seen)
    assert same_server_by_another_name.seen  # reached, without the credentials: the host name differs


def test_a_redirect_to_another_scheme_is_refused_in_one_sentence():
    registry = FakeRegistry({("HEAD", "/v2/team/app/blobs/"): (307, {"Location": "file:///etc/passwd"})})
    try:
        with pytest.raises(OciError, match="not an http or https URL"):
            Registry("127.0.0.1:%d" % registry.port, "ci", "hunter2").blob_exists("team/app", "sha256:" + "0" * 64)
    finally:
        registry.stop()


def test_a_connection_closed_while_idle_is_opened_again():
    registry = FakeRegistry(UPLOADS, close_after_each=True)
    try:
        client = Registry("127.0.0.1:%d" % registry.port, "ci", "hunter2")
        assert client.push(small_image(), "team/app", "v1") == 2
    finally:
        registry.stop()
    assert registry.connections == len(registry.seen) == 8


def test_a_response_left_half_read_does_not_break_the_next_request():
    registry = FakeRegistry({("GET", "/v2/team/app/blobs/"): (200, {}, b"b" * 100000)})
    try:
        client = Registry("127.0.0.1:%d" % registry.port, "ci", "hunter2")
        digest = "sha256:" + "1" * 64
        assert client.request("GET", "/v2/team/app/blobs/" + digest)[0] == 200
        client._open("GET", client._url("/v2/team/app/blobs/" + digest)).read(10)  # a stream given up early
        assert not client.blob_exists("team/app", digest)  # HEAD is not routed: 404
    finally:
        registry.stop()
    assert registry.connections == 2


def test_an_error_answer_is_one_sentence_and_an_unreachable_registry_too():
    registry = FakeRegistry({("PUT", "/v2/team/app/manifests/"): (400, {}, b'{"errors":[{"code":"MANIFEST_INVALID"}]}')})
    try:
        with pytest.raises(OciError, match="answered 400 Bad Request to PUT .*MANIFEST_INVALID"):
            Registry("127.0.0.1:%d" % registry.port, "ci", "hunter2").request(
                "PUT", "/v2/team/app/manifests/v1", data=b"{}")
    finally:
        registry.stop()
    with pytest.raises(OciError, match="cannot reach registry 127.0.0.1:%d" % registry.port):
        Registry("127.0.0.1:%d" % registry.port).blob_exists("team/app", "sha256:" + "0" * 64)


# ---- layer cache pruning --------------------------------------------------------------------------------------

def test_the_layer_cache_prunes_only_its_own_blobs_unused_for_the_age_given(tmp_path):
    cache = LayerCache(str(tmp_path / "cache"))
    used, unused = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    for diff_id in (used, unused):
        cache.put(diff_id, "gzip", b"blob")
    gzip_dir, day = tmp_path / "cache" / "gzip-1", 86400
    old = time.time() - 40 * day
    foreign = {"README": gzip_dir / "README", "upper": gzip_dir / ("C" * 64), "elsewhere": tmp_path / "cache" / (
        "c" * 64), "outside": tmp_path / ("d" * 64)}
    for path in foreign.values():
        path.write_bytes(b"not the cache's")
    (gzip_dir / ("e" * 64)).mkdir()  # a directory with a blob's name
    (gzip_dir / ("f" * 64)).symlink_to(foreign["outside"])  # a link with a blob's name, to something old
    stage = gzip_dir / ".blob-interrupted"
    stage.write_bytes(b"half")
    for path in [*foreign.values(), gzip_dir / ("e" * 64), stage, gzip_dir / ("a" * 64), gzip_dir / ("b" * 64)]:
        os.utime(path, (old, old))
    assert cache.get(used, "gzip") == b"blob"  # a use renews the blob

    assert cache.prune(30 * day) == 2  # the unused blob and the stage left by an interrupted write
    assert sorted(p.name for p in gzip_dir.iterdir()) == sorted(["README", "C" * 64, "a" * 64, "e" * 64, "f" * 64])
    assert all(path.exists() for path in foreign.values())
    assert LayerCache(str(tmp_path / "absent")).prune(0) == 0


def test_a_read_only_cache_does_not_renew_what_it_reads(tmp_path):
    LayerCache(str(tmp_path)).put("sha256:" + "a" * 64, "zstd", b"blob")
    blob = tmp_path / "zstd-3" / ("a" * 64)
    os.utime(blob, (1, 1))
    assert LayerCache(str(tmp_path), writable=False).get("sha256:" + "a" * 64, "zstd") == b"blob"
    assert blob.stat().st_mtime == 1


def test_a_blob_cached_at_another_gzip_level_is_never_taken_and_is_pruned_by_age(tmp_path):
    """Before level 1, gzip blobs were made at level 6 in gzip/: a build must compress afresh rather than take
    one (the digest would depend on the cache), and pruning removes them once unused for the age given."""
    diff_id, day = "sha256:" + "a" * 64, 86400
    old_blob = tmp_path / "cache" / "gzip" / ("a" * 64)
    old_blob.parent.mkdir(parents=True)
    old_blob.write_bytes(b"level 6")
    cache = LayerCache(str(tmp_path / "cache"))
    assert cache.get(diff_id, "gzip") is None
    assert cache.prune(30 * day) == 0 and old_blob.exists()
    os.utime(old_blob, (time.time() - 40 * day,) * 2)
    assert cache.prune(30 * day) == 1 and not old_blob.exists()
