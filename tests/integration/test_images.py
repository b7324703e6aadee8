"""Minimal images of every fixture in every link mode, built by both builders, run locked down.

The daemonless builder is swiftlinux.deploy.oci_image; the Docker builder is the swiftlinux.deploy.image role
(community.docker.docker_image with the classic builder). Every image runs read-only, with all capabilities
dropped, as user 65532, with --network none and with host networking on 127.0.0.1. Containers carry the
label swiftlinux.test=pytest and are always removed; images are tagged swiftlinux-test/... and removed at
the end of the module.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from lambda_runtime import RuntimeAPI
from support import IMPOSSIBLE, LINK_MODES, PRODUCTS, REPO, built_fixture, remove_tags, run_module, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.docker]

SERVICES = {"http-service", "foundation-service", "networking-service"}
# Arguments and expected output of the programs that are not services.
PROGRAMS = {
    "hello": ([], "Hello, world!\n"),
    "greeter": (["Ops"], "Hello, Ops! (shared 1.0.0)\n"),
    "counter": (["2"], "1\n2\nshared 1.0.0\n"),
    "resource-reader": ([], "Greetings from a resource bundle\nmessage: configured by config.json\n"),
    "name-lookup": (["127.0.0.1"], "127.0.0.1 127.0.0.1\n"),
}
# Programs shaped like other people's: a server with positional arguments and a health path of its own
# (probed from the host, no self-probe in the image), and a worker that listens on nothing.
OWN_SERVERS = {"dep-server": "/healthz"}
WORKERS = {"worker"}
LAMBDA_FUNCTIONS = {"lambda-function"}  # they ask a Lambda Runtime API for work (tests/lambda_runtime.py)
MATRIX = [(f, m, p) for f in PRODUCTS for m in LINK_MODES if (f, m) not in IMPOSSIBLE for p in PRODUCTS[f]]
EXPECTED_RECIPE = {"static_executable": "scratch-static", "static_stdlib": "scratch-bag", "dynamic": "runtime-base"}
LABEL = {"swiftlinux.test": "pytest"}
PREFIX = "swiftlinux-test/"
EPOCH = 1700000000


@pytest.fixture(scope="module")
def engine(docker_client):
    yield docker_client
    remove_tags(docker_client, PREFIX)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def oci_image(args: dict, **kwargs) -> dict:
    result = run_module("oci_image", args, **kwargs)
    assert not result.get("failed"), result.get("msg") or result
    return result


def tag_of(fixture: str, mode: str, product: str) -> str:
    return f"{mode.replace('_', '-')}-{fixture}-{product}"


def product_of(fixture: str, mode: str, product: str) -> dict:
    return built_fixture(fixture, mode)["products"][product]


def image_args(fixture: str, mode: str, product: str, port: int) -> dict:
    built = product_of(fixture, mode, product)
    args = {"executable": built["path"], "resources": built["resources"], "source_date_epoch": EPOCH,
            "source": "https://example.invalid/swiftlinux/fixtures", "revision": "0123abcd"}
    if product in SERVICES:
        # The fixtures' own --check self-probe, given explicitly: oci_image adds no HEALTHCHECK by itself.
        args.update(ports=[port], healthcheck={"command": [f"/app/{product}", "--check",
                                                           f"http://127.0.0.1:{port}/health"], "interval": 1})
    return args


# ---- the shared Swift runtime base image, both builders -----------------------------------------

@pytest.fixture(scope="module")
def runtime_base(engine, tmp_path_factory):
    """The runtime base image as an OCI layout (for daemonless app images), loaded into Docker too."""
    work = tmp_path_factory.mktemp("runtime-base")
    args = {"recipe": "runtime-base", "name": PREFIX + "swift-runtime", "source_date_epoch": EPOCH}
    layout = oci_image({**args, "dest": str(work / "layout")})
    archive = oci_image({**args, "format": "archive", "dest": str(work / "runtime.tar")})
    # The layout's layers are gzip, the archive's uncompressed (compression auto): the same image, other blobs.
    assert layout["image_id"] == archive["image_id"] and layout["reference"].endswith(":" + layout["swift_version"])
    assert {layer["media_type"] for layer in layout["layers"]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    assert {layer["media_type"] for layer in archive["layers"]} == {"application/vnd.oci.image.layer.v1.tar"}
    engine.images.load((work / "runtime.tar").read_bytes())
    return {"layout": work / "layout", "result": layout}


@pytest.fixture(scope="module")
def docker_runtime_base(engine, tmp_path_factory, runtime_base):
    work = tmp_path_factory.mktemp("docker-runtime-base")
    built = run_role(work, {"image_recipe": "runtime-base", "image_name": PREFIX + "swift-runtime-docker",
                            "image_work_dir": str(work / "image")})
    assert built["reference"].endswith(":" + runtime_base["result"]["swift_version"])
    return built["reference"]


# ---- running images --------------------------------------------------------------------------

def run_locked_down(engine, ref: str, command: list[str], network: str, environment: dict | None = None):
    return engine.containers.run(ref, command=command, network_mode=network, read_only=True, cap_drop=["ALL"],
                                 user="65532:65532", security_opt=["no-new-privileges"], labels=LABEL, detach=True,
                                 environment=environment or {})


@contextlib.contextmanager
def container(engine, ref: str, command: list[str], network: str, environment: dict | None = None):
    box = run_locked_down(engine, ref, command, network, environment)
    try:
        yield box
    finally:
        box.remove(force=True)


def wait_healthy(box, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        box.reload()
        health = box.attrs["State"].get("Health", {}).get("Status")
        if health == "healthy":
            return
        if box.status == "exited":
            break
        time.sleep(0.3)
    raise AssertionError(f"{box.image.tags} did not become healthy ({box.attrs['State']}):\n"
                         f"{box.logs().decode(errors='replace')}")


def wait_serving(box, probe: list[str], timeout: float = 30) -> None:
    """Until the fixture's own --check probe, run inside the container, succeeds (no shell, no curl in there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = box.exec_run(probe, user="65532")
        if result.exit_code == 0:
            return
        box.reload()
        if box.status == "exited":
            break
        time.sleep(0.3)
    raise AssertionError(f"{box.image.tags} did not serve ({box.attrs['State']}):\n{box.logs().decode(errors='replace')}")


def wait_answering(box, url: str, timeout: float = 30) -> None:
    """Until the URL answers 200 from the host: the generic http probe, for images without a self-probe."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            box.reload()
            if box.status == "exited":
                break
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer ({box.attrs['State']}):\n{box.logs().decode(errors='replace')}")


def check_runs(engine, ref: str, product: str, port: int) -> None:
    """The image works read-only, without capabilities, as 65532, without network and with host networking."""
    if product in SERVICES:
        command = ["--bind", "127.0.0.1", "--port", str(port)]
        config = image_config(engine, ref)
        probe = config["Entrypoint"] + ["--check", f"http://127.0.0.1:{port}/health"]  # a bag starts via its loader
        with container(engine, ref, command, "none") as box:
            if config.get("Healthcheck"):
                wait_healthy(box)  # the HEALTHCHECK given to the builder works without a shell
            wait_serving(box, probe)
            assert box.exec_run(["/bin/sh", "-c", "true"]).exit_code != 0
        with container(engine, ref, command, "host") as box:
            wait_serving(box, probe)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
                assert reply.status == 200 and json.loads(reply.read()) == {"status": "ok"}
            box.stop(timeout=10)
            assert box.wait(timeout=15)["StatusCode"] == 0, "SIGTERM must stop the service cleanly"
    elif product in OWN_SERVERS:
        with container(engine, ref, ["127.0.0.1", str(port)], "host") as box:
            wait_answering(box, f"http://127.0.0.1:{port}{OWN_SERVERS[product]}")
            box.stop(timeout=10)
            assert box.wait(timeout=15)["StatusCode"] == 0, "SIGTERM must stop the server cleanly"
    elif product in LAMBDA_FUNCTIONS:
        # One invocation through a local Runtime API on this machine's loopback, reached with host networking.
        with RuntimeAPI(function_name=product) as api, \
                container(engine, ref, [], "host", {"AWS_LAMBDA_RUNTIME_API": api.address}) as box:
            answered = api.invoke({"image": ref}, timeout=30)
            assert answered.outcome == "response", (answered.error, box.logs().decode(errors="replace"))
            assert answered.json()["event"] == {"image": ref}
    elif product in WORKERS:
        with container(engine, ref, [], "none") as box:
            deadline = time.monotonic() + 30
            while b"heartbeat 2 " not in box.logs() and time.monotonic() < deadline:
                time.sleep(0.3)
            box.stop(timeout=10)
            assert box.wait(timeout=15)["StatusCode"] == 0, box.logs().decode(errors="replace")
            assert b"heartbeat 2 " in box.logs(), box.logs().decode(errors="replace")
    else:
        arguments, expected = PROGRAMS[product]
        for network in ("none", "host"):
            with container(engine, ref, arguments, network) as box:
                status = box.wait(timeout=30)["StatusCode"]
                output = box.logs(stdout=True, stderr=False).decode()
                assert (status, output) == (0, expected), box.logs().decode(errors="replace")


def image_listing(engine, ref: str) -> dict[str, tuple]:
    """{path: (type, mode, link target)} over every layer of an image in Docker, from `docker save`."""
    saved = io.BytesIO(b"".join(engine.images.get(ref).save(named=False)))
    listing = {}
    with tarfile.open(fileobj=saved) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                for member in inner.getmembers():
                    path = member.name.lstrip("./").rstrip("/")
                    if path:
                        listing[path] = (member.type, member.mode & 0o7777, member.linkname)
    return listing


def image_config(engine, ref: str) -> dict:
    return engine.images.get(ref).attrs["Config"]


# ---- the role, through ansible-playbook ---------------------------------------------------------

def run_role(work: Path, variables: dict, env: dict | None = None, expect_failure: bool = False) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    out = work / "image_built.json"
    playbook = work / "play.yml"
    playbook.write_text(f"""---
- name: Build an image with the image role
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
  roles:
    - role: swiftlinux.deploy.image
  post_tasks:
    - name: Save the result
      ansible.builtin.copy:
        content: "{{{{ image_built | to_json }}}}"
        dest: {out}
        mode: "0644"
""")
    (work / "vars.json").write_text(json.dumps(variables))
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), str(playbook), "-e", f"@{work / 'vars.json'}"],
                          capture_output=True, text=True, cwd=REPO, env={**tool_env(), **(env or {})}, check=False)
    if expect_failure:
        assert proc.returncode != 0, proc.stdout
        return {"output": proc.stdout + proc.stderr}
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    built = json.loads(out.read_text())
    built["changed_tasks"] = proc.stdout.split("changed=")[1].split()[0]
    return built


# ---- every fixture in every mode --------------------------------------------------------------

@pytest.mark.parametrize(("fixture", "mode", "product"), MATRIX)
def test_daemonless_image_runs_locked_down_and_is_reproducible(engine, runtime_base, tmp_path, fixture, mode, product):
    port = free_port()
    args = image_args(fixture, mode, product, port)
    if mode == "dynamic":
        args["base"] = str(runtime_base["layout"])
    ref_args = {**args, "name": PREFIX + "oci", "tag": tag_of(fixture, mode, product), "format": "archive"}
    first = oci_image({**ref_args, "dest": str(tmp_path / "a.tar")})
    assert first["recipe"] == EXPECTED_RECIPE[mode] and first["link_mode"] == mode
    assert first["changed"]

    # Same inputs, another output: the same digest. Same output again: nothing to do.
    second = oci_image({**ref_args, "dest": str(tmp_path / "b.tar")})
    assert second["digest"] == first["digest"] and second["image_id"] == first["image_id"]
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    again = oci_image({**ref_args, "dest": str(tmp_path / "a.tar")})
    assert not again["changed"] and again["digest"] == first["digest"]

    files = set(first["files"])  # the image's own layers: for runtime-base only the app layer
    assert "bin/sh" not in files and "bin" not in files
    roles = [layer["role"] for layer in first["layers"]]
    assert roles[-1] == "app" and (mode == "static_executable" or "runtime" in roles or "inherited" in roles)
    if mode != "dynamic":
        assert "app/swift-backtrace-static" in files
    for bundle in product_of(fixture, mode, product)["resources"]:
        assert f"app/{Path(bundle).name}" in files

    engine.images.load((tmp_path / "a.tar").read_bytes())
    ref = first["reference"]
    assert engine.images.get(ref).id == first["image_id"]
    config = image_config(engine, ref)
    assert config["User"] == "65532:65532" and "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in config["Env"]
    assert config["Labels"]["io.swiftlinux.link-mode"] == mode
    assert config["Labels"]["io.swiftlinux.swift-version"] == built_fixture(fixture, mode)["swift_version"]
    assert config["Labels"]["org.opencontainers.image.revision"] == "0123abcd"
    if product in SERVICES:
        assert config["ExposedPorts"] == {f"{port}/tcp": {}}
        assert config["Healthcheck"]["Test"] == ["CMD", f"/app/{product}", "--check", f"http://127.0.0.1:{port}/health"]
    listing = image_listing(engine, ref)
    assert {"etc/passwd", "etc/group", "tmp", "etc/ssl/certs/ca-certificates.crt", f"app/{product}"} <= set(listing)
    assert listing["tmp"][1] == 0o1777
    assert "bin/sh" not in listing and "usr/bin/sh" not in listing
    check_runs(engine, ref, product, port)


# The Docker builder is compared on one service per link mode plus a Foundation one: the daemonless matrix
# above already runs every fixture in every mode, and each Docker build costs as much as the whole check.
DOCKER_SAMPLE = [("http-service", m, "http-service") for m in LINK_MODES] + [
    ("foundation-service", "static_stdlib", "foundation-service")]


@pytest.mark.parametrize(("fixture", "mode", "product"), DOCKER_SAMPLE)
def test_docker_builder_gives_the_same_files_and_runs(engine, runtime_base, docker_runtime_base, tmp_path,
                                                      fixture, mode, product):
    port = free_port()
    args = image_args(fixture, mode, product, port)
    tag = tag_of(fixture, mode, product)
    daemonless = oci_image({**args, "name": PREFIX + "cmp", "tag": tag, "format": "archive",
                            "base": str(runtime_base["layout"]) if mode == "dynamic" else None,
                            "dest": str(tmp_path / "oci.tar")})
    engine.images.load((tmp_path / "oci.tar").read_bytes())

    role_vars = {"image_executable": args["executable"], "image_resources": args["resources"],
                 "image_name": PREFIX + "docker", "image_tag": tag, "image_ports": args.get("ports", []),
                 "image_healthcheck": args.get("healthcheck"), "image_source": args["source"],
                 "image_revision": args["revision"],
                 "image_source_date_epoch": EPOCH, "image_work_dir": str(tmp_path / "work")}
    if mode == "dynamic":
        role_vars["image_base_image"] = docker_runtime_base
    built = run_role(tmp_path / "role", role_vars)
    assert built["recipe"] == EXPECTED_RECIPE[mode]
    ref = built["reference"]

    from_docker, from_python = image_listing(engine, ref), image_listing(engine, daemonless["reference"])
    if mode == "dynamic":
        # The two base images hold the same files too; compare what sits on top of them.
        assert set(image_listing(engine, docker_runtime_base)) == set(image_listing(engine, runtime_base["result"]["reference"]))
    assert sorted(from_docker) == sorted(from_python)
    assert from_docker == from_python, "same paths, but types, modes or link targets differ"
    docker_config, python_config = image_config(engine, ref), image_config(engine, daemonless["reference"])
    for key in ("User", "Entrypoint", "Cmd", "ExposedPorts", "Healthcheck", "WorkingDir", "Labels"):
        assert docker_config.get(key) == python_config.get(key), key
    assert sorted(docker_config["Env"]) == sorted(python_config["Env"])
    check_runs(engine, ref, product, port)

    rerun = run_role(tmp_path / "role", role_vars)
    assert rerun["id"] == built["id"] and rerun["changed_tasks"] == "0"


# ---- dynamic builds in scratch with their scope-all bag ------------------------------------------

# Services and the resources fixture: the cases where a bag's loader, libraries or bundles could go wrong.
DYNAMIC = [("http-service", "http-service"), ("foundation-service", "foundation-service"),
           ("resources", "resource-reader")]
FOUNDATION_FIXTURES = {"foundation-service", "resources"}  # Bundle.module is Foundation


@pytest.mark.parametrize(("fixture", "product"), DYNAMIC)
def test_dynamic_build_with_its_bag_in_scratch_both_builders(engine, tmp_path, fixture, product):
    built = product_of(fixture, "dynamic", product)
    bag = tmp_path / "bag"
    bagged = run_module("shared_objects", {"executables": [built["path"]], "dest": str(bag), "scope": "all",
                                           "resources": built["resources"]})
    assert not bagged.get("failed"), bagged.get("msg")
    port = free_port()
    args = {**image_args(fixture, "dynamic", product, port), "bag": str(bag), "resources": []}
    args.pop("healthcheck", None)  # the program sits in /app/libexec behind the bag's loader
    tag = "bag-" + tag_of(fixture, "dynamic", product)
    first = oci_image({**args, "name": PREFIX + "oci", "tag": tag, "format": "archive", "dest": str(tmp_path / "a.tar")})
    second = oci_image({**args, "name": PREFIX + "oci", "tag": tag, "format": "archive", "dest": str(tmp_path / "b.tar")})
    assert first["recipe"] == "scratch-bag" and first["digest"] == second["digest"]
    tzdata = ["tzdata"] if fixture in FOUNDATION_FIXTURES else []  # its own layer, for programs using Foundation
    assert [layer["role"] for layer in first["layers"]] == ["base", *tzdata, "runtime", "app"]
    assert "bin/sh" not in first["files"] and f"app/bin/{product}" not in first["files"], "no sh, no sh launcher"
    engine.images.load((tmp_path / "a.tar").read_bytes())
    check_runs(engine, first["reference"], product, port)

    role_vars = {"image_executable": built["path"], "image_bag": str(bag), "image_name": PREFIX + "docker",
                 "image_tag": tag, "image_ports": args.get("ports", []), "image_source": args["source"], "image_revision": args["revision"],
                 "image_work_dir": str(tmp_path / "work")}
    docker_built = run_role(tmp_path / "role", role_vars)
    assert image_listing(engine, docker_built["reference"]) == image_listing(engine, first["reference"])
    check_runs(engine, docker_built["reference"], product, port)


# ---- registry: push over the distribution API, pull back with Docker ------------------------------

def test_push_to_a_registry_then_pull_and_run(engine, registry, tmp_path):
    port = free_port()
    name = f"{registry.host}/{PREFIX}http-service"
    args = {**image_args("http-service", "static_executable", "http-service", port), "name": name, "tag": "1.0.0",
            "push": True, "format": "archive", "dest": str(tmp_path / "image.tar")}
    planned = run_module("oci_image", args, check_mode=True)
    assert planned["changed"] and not (tmp_path / "image.tar").exists()
    pushed = oci_image(args)
    assert pushed["changed"] and pushed["pushed"]
    again = oci_image(args)
    assert not again["changed"] and not again["pushed"] and again["digest"] == pushed["digest"]

    inspected = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{name}:1.0.0"],
                               capture_output=True, text=True, check=True)
    assert json.loads(inspected.stdout)["Digest"] == pushed["digest"]

    pulled = engine.images.pull(name, tag="1.0.0")
    assert pulled.id == pushed["image_id"]
    check_runs(engine, f"{name}:1.0.0", "http-service", port)


def test_push_with_credentials(auth_registry):
    name = f"{auth_registry.host}/{PREFIX}hello"
    args = {"executable": product_of("hello", "static_executable", "hello")["path"], "name": name, "push": True,
            "registry_username": auth_registry.username, "registry_password": auth_registry.password}
    assert oci_image(args)["pushed"]
    assert not oci_image(args)["changed"]


def test_runtime_base_app_push_uploads_only_the_app_layer(engine, registry, runtime_base):
    base = runtime_base["result"]
    name = f"{registry.host}/{PREFIX}runtime-app"
    common = {"base": str(runtime_base["layout"]), "name": name, "push": True, "source_date_epoch": EPOCH}
    first = oci_image({**common, "executable": product_of("hello", "dynamic", "hello")["path"], "tag": "hello"})
    counter = oci_image({**common, "executable": product_of("multi-exec", "dynamic", "counter")["path"],
                         "tag": "counter"})
    shared = [layer["digest"] for layer in first["layers"] if layer["role"] == "inherited"]
    assert shared == [layer["digest"] for layer in base["layers"]]
    assert shared == [layer["digest"] for layer in counter["layers"] if layer["role"] == "inherited"]
    assert [layer["role"] for layer in counter["layers"]][-1:] == ["app"] and len(counter["layers"]) == len(shared) + 1


# ---- bad inputs: one sentence each, nothing written ---------------------------------------------

def fails(args: dict, *needles: str, check_mode: bool = False) -> str:
    result = run_module("oci_image", args, check_mode=check_mode)
    assert result.get("failed"), result
    assert "Traceback" not in result["msg"] and "Traceback" not in result.get("exception", "")
    for needle in needles:
        assert needle in result["msg"], result["msg"]
    return result["msg"]


def hello_args(tmp_path, **extra) -> dict:
    return {"executable": product_of("hello", "static_executable", "hello")["path"], "name": PREFIX + "hello",
            "dest": str(tmp_path / "out"), **extra}


def test_daemonless_build_needs_no_engine(tmp_path):
    env = {**tool_env(), "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    cmd = [str(REPO / ".venv" / "bin" / "ansible"), "localhost", "-c", "local", "-i", "localhost,", "-e",
           "ansible_python_interpreter={{ ansible_playbook_python }}", "-m", "swiftlinux.deploy.oci_image",
           "-a", json.dumps(hello_args(tmp_path))]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout
    assert (tmp_path / "out" / "index.json").is_file()


def test_docker_builder_without_an_engine_says_what_to_do(tmp_path):
    result = run_role(tmp_path, {"image_executable": product_of("hello", "static_executable", "hello")["path"],
                                 "image_name": PREFIX + "no-engine", "image_work_dir": str(tmp_path / "work")},
                      env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, expect_failure=True)
    assert "The Docker engine does not answer" in result["output"] and "image_builder=oci" in result["output"]
    assert not (tmp_path / "work").exists()


def test_unreachable_registry(tmp_path):
    closed = free_port()
    fails({**hello_args(tmp_path), "name": f"127.0.0.1:{closed}/{PREFIX}hello", "push": True},
          f"cannot reach registry 127.0.0.1:{closed}", "check that it runs")
    assert not (tmp_path / "out").exists()


def test_registry_refuses_the_credentials(auth_registry, tmp_path):
    base = {**hello_args(tmp_path), "name": f"{auth_registry.host}/{PREFIX}hello", "push": True}
    fails({**base, "registry_username": auth_registry.username, "registry_password": "wrong"},
          "refused the credentials of user swiftlinux", "registry_password")
    fails(base, "needs credentials", "registry_username")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tag", ["Bad Tag!", "-leading-dash", "x" * 129])
def test_invalid_tag(tmp_path, tag):
    fails(hello_args(tmp_path, tag=tag), "image tag", "is not valid")
    assert not (tmp_path / "out").exists()


def test_invalid_name(tmp_path):
    fails(hello_args(tmp_path, name="Upper/Case"), "image name 'Upper/Case' is not valid")


def test_architecture_that_differs_from_the_platform(tmp_path):
    fails(hello_args(tmp_path, platform="linux/arm64"), "built for x86_64 (linux/amd64)",
          "platform linux/arm64 was requested", "set platform to linux/amd64")
    assert not (tmp_path / "out").exists()


@pytest.fixture()
def resource_bundle_copy(tmp_path) -> Path:
    source = Path(product_of("resources", "static_executable", "resource-reader")["resources"][0])
    bundle = tmp_path / source.name
    shutil.copytree(source, bundle)
    return bundle


def resource_args(tmp_path, bundle: Path) -> dict:
    return {"executable": product_of("resources", "static_executable", "resource-reader")["path"],
            "resources": [str(bundle)], "name": PREFIX + "resources", "dest": str(tmp_path / "out")}


def test_absolute_symlink_out_of_the_bundle_is_refused(tmp_path, resource_bundle_copy):
    (resource_bundle_copy / "passwd").symlink_to("/etc/passwd")
    fails(resource_args(tmp_path, resource_bundle_copy), "symlink passwd -> /etc/passwd", "outside the bundle")
    assert not (tmp_path / "out").exists()


def test_relative_symlink_out_of_the_bundle_is_refused(tmp_path, resource_bundle_copy):
    (tmp_path / "secret").write_text("no")
    (resource_bundle_copy / "escape").symlink_to("../secret")
    fails(resource_args(tmp_path, resource_bundle_copy), "escape -> ../secret", "outside the bundle")


def test_symlinks_inside_the_bundle_are_kept(engine, tmp_path, resource_bundle_copy):
    (resource_bundle_copy / "alias.txt").symlink_to("greeting.txt")
    (resource_bundle_copy / "absolute.json").symlink_to(resource_bundle_copy / "config.json")
    result = oci_image({**resource_args(tmp_path, resource_bundle_copy), "format": "archive",
                        "dest": str(tmp_path / "image.tar"), "tag": "links"})
    engine.images.load((tmp_path / "image.tar").read_bytes())
    listing = image_listing(engine, result["reference"])
    bundle = f"app/{resource_bundle_copy.name}"
    assert listing[f"{bundle}/alias.txt"] == (tarfile.SYMTYPE, 0o777, "greeting.txt")
    assert listing[f"{bundle}/absolute.json"] == (tarfile.SYMTYPE, 0o777, "config.json"), "made relative"
    check_runs(engine, result["reference"], "resource-reader", 0)


def test_runtime_base_of_another_swift_version_is_refused(runtime_base, tmp_path):
    fails({"executable": product_of("http-service", "dynamic", "http-service")["path"], "swift_version": "5.10.1",
           "base": str(runtime_base["layout"]), "name": PREFIX + "mismatch", "dest": str(tmp_path / "out")},
          "built by Swift 5.10.1", f"holds Swift {runtime_base['result']['swift_version']}",
          "build the runtime base image for Swift 5.10.1")
    assert not (tmp_path / "out").exists()


def test_docker_builder_refuses_a_runtime_base_of_another_swift_version(docker_runtime_base, tmp_path):
    result = run_role(tmp_path, {"image_executable": product_of("hello", "dynamic", "hello")["path"],
                                 "image_swift_version": "5.10.1", "image_base_image": docker_runtime_base,
                                 "image_name": PREFIX + "mismatch", "image_work_dir": str(tmp_path / "work")},
                      expect_failure=True)
    assert "was built by Swift 5.10.1 but the runtime base image" in result["output"]


def test_static_recipe_for_a_dynamic_build_is_refused(tmp_path):
    fails({"executable": product_of("hello", "static_stdlib", "hello")["path"], "recipe": "scratch-static",
           "name": PREFIX + "x", "dest": str(tmp_path / "out")},
          "static_stdlib build", "cannot run alone in a scratch-static image", "scratch-bag")


def test_dynamic_scratch_bag_without_a_bag_says_how_to_make_one(tmp_path):
    fails({"executable": product_of("hello", "dynamic", "hello")["path"], "recipe": "scratch-bag",
           "name": PREFIX + "x", "dest": str(tmp_path / "out")}, "shared_objects with scope=all", "runtime-base")


def test_check_mode_writes_nothing(tmp_path):
    result = run_module("oci_image", hello_args(tmp_path), check_mode=True)
    assert result["changed"] and result["digest"].startswith("sha256:")
    assert not (tmp_path / "out").exists()


# ---- hostile-but-valid config: both builders give the same Config --------------------------------

HOSTILE_VALUE = 'it\'s "quoted", back\\slash\\n, $HOME ${PATH} `id`\nsecond line\ttab \u00e9\u00df \u2603 \U0001F600 \\'


def test_hostile_but_valid_config_is_identical_in_both_builders(engine, tmp_path):
    hello = product_of("hello", "static_executable", "hello")["path"]
    config = {"env": {"HOSTILE": HOSTILE_VALUE, "EMPTY": "", "_under_1": "a=b=c", "PATH": "/app:/bin"},
              "labels": {"com.example.hostile": HOSTILE_VALUE, "org.example/slash-key_1": "#not a comment"},
              "command": ["--flag=$HOME", HOSTILE_VALUE, "", "\\"], "ports": [1, 65535],
              "healthcheck": {"command": ["/app/hello", HOSTILE_VALUE], "interval": 7, "timeout": 3, "retries": 2,
                              "start_period": 4}}
    daemonless = oci_image({"executable": hello, "name": PREFIX + "hostile", "tag": "oci", "format": "archive",
                            "dest": str(tmp_path / "oci.tar"), "source_date_epoch": EPOCH, **config})
    engine.images.load((tmp_path / "oci.tar").read_bytes())
    built = run_role(tmp_path / "role", {"image_executable": hello, "image_name": PREFIX + "hostile",
                                         "image_tag": "docker", "image_env": config["env"],
                                         "image_labels": config["labels"], "image_command": config["command"],
                                         "image_ports": config["ports"], "image_healthcheck": config["healthcheck"],
                                         "image_source_date_epoch": EPOCH, "image_work_dir": str(tmp_path / "work")})
    from_python, from_docker = image_config(engine, daemonless["reference"]), image_config(engine, built["reference"])
    assert f"HOSTILE={HOSTILE_VALUE}" in from_python["Env"] and "PATH=/app:/bin" in from_python["Env"]
    assert from_python["Labels"]["com.example.hostile"] == HOSTILE_VALUE
    assert from_python["Cmd"] == config["command"] and from_python["User"] == "65532:65532"
    assert sorted(from_docker["Env"]) == sorted(from_python["Env"])
    for key in ("Labels", "User", "Entrypoint", "Cmd", "ExposedPorts", "WorkingDir", "Healthcheck"):
        assert from_docker.get(key) == from_python.get(key), key


def test_env_key_with_a_newline_is_refused_before_anything_is_built(tmp_path):
    fails(hello_args(tmp_path, env={"A\nUSER 0:0": "x"}), "env key 'A\\nUSER 0:0' is not a POSIX variable name")
    result = run_role(tmp_path / "role", {"image_executable": product_of("hello", "static_executable", "hello")["path"],
                                          "image_name": PREFIX + "injected", "image_env": {"A\nUSER 0:0": "x"},
                                          "image_work_dir": str(tmp_path / "work")}, expect_failure=True)
    assert "is not a POSIX variable name" in result["output"] and "Traceback" not in result["output"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "work" / "context").exists()


def test_image_role_builds_runtime_base_apps_with_both_builders(engine, docker_runtime_base, tmp_path):
    base = run_role(tmp_path / "base", {"image_recipe": "runtime-base", "image_builder": "oci",
                                        "image_name": PREFIX + "swift-runtime-oci-role",
                                        "image_work_dir": str(tmp_path / "base-work")})
    hello = product_of("hello", "dynamic", "hello")["path"]
    for builder, extra in (("oci", {"image_base": base["archive"]}), ("docker", {"image_base_image": docker_runtime_base})):
        built = run_role(tmp_path / builder, {"image_executable": hello, "image_builder": builder,
                                              "image_name": PREFIX + "runtime-app-" + builder, **extra,
                                              "image_work_dir": str(tmp_path / ("work-" + builder))})
        assert built["recipe"] == "runtime-base", builder
        with container(engine, built["reference"], [], "none") as box:
            assert box.wait(timeout=30)["StatusCode"] == 0, box.logs().decode(errors="replace")
            assert box.logs(stdout=True, stderr=False).decode() == "Hello, world!\n", builder


# ---- layers images share, the layer cache and compression ------------------------------------------

def layer_roles(result: dict) -> list[str]:
    return [layer["role"] for layer in result["layers"]]


def test_backtracer_and_base_are_layers_every_image_of_a_toolchain_shares(tmp_path):
    hello, http = (product_of(f, "static_executable", f) for f in ("hello", "http-service"))
    first = oci_image({"executable": hello["path"], "name": PREFIX + "hello", "source_date_epoch": EPOCH,
                       "dest": str(tmp_path / "hello")})
    # Another program, built from another commit: only the application layer differs.
    second = oci_image({"executable": http["path"], "name": PREFIX + "http", "source_date_epoch": EPOCH + 86400,
                        "dest": str(tmp_path / "http")})
    # runtime: the glibc, libstdc++ and libgcc_s that swift-backtrace-static loads (the program needs none)
    assert layer_roles(first) == layer_roles(second) == ["base", "backtracer", "runtime", "app"]
    assert [layer["digest"] for layer in first["layers"][:3]] == [layer["digest"] for layer in second["layers"][:3]], \
        "base, backtracer and its runtime libraries are byte-identical"
    assert first["layers"][3]["digest"] != second["layers"][3]["digest"]
    assert "app/swift-backtrace-static" in first["files"]


def test_without_the_backtracer_the_image_is_the_program_and_its_ca_bundle(engine, tmp_path):
    hello = product_of("hello", "static_executable", "hello")
    result = oci_image({"executable": hello["path"], "name": PREFIX + "oci", "tag": "no-backtrace", "backtrace": False,
                        "format": "archive", "dest": str(tmp_path / "a.tar")})
    assert layer_roles(result) == ["base", "app"] and "app/swift-backtrace-static" not in result["files"]
    program = Path(hello["path"]).stat().st_size + Path("/etc/ssl/certs/ca-certificates.crt").stat().st_size
    assert result["size"] <= 1.05 * program, (result["size"], program)  # uncompressed layers (compression auto)
    engine.images.load((tmp_path / "a.tar").read_bytes())
    assert not any(v.startswith("SWIFT_BACKTRACE=") for v in image_config(engine, result["reference"])["Env"])
    check_runs(engine, result["reference"], "hello", 0)


def test_tzdata_is_a_layer_of_its_own_for_programs_that_use_foundation(tmp_path):
    built = product_of("foundation-service", "static_executable", "foundation-service")
    result = oci_image({"executable": built["path"], "name": PREFIX + "fs", "dest": str(tmp_path / "fs")})
    assert layer_roles(result) == ["base", "tzdata", "backtracer", "runtime", "app"]
    tzdata = oci_image({"executable": built["path"], "name": PREFIX + "fs", "tzdata": False,
                        "dest": str(tmp_path / "no-tz")})
    assert layer_roles(tzdata) == ["base", "backtracer", "runtime", "app"]


def test_a_warm_layer_cache_compresses_only_the_changed_layer(tmp_path):
    built = product_of("http-service", "static_executable", "http-service")
    program = tmp_path / "release-2" / "http-service"
    program.parent.mkdir()
    program.write_bytes(Path(built["path"]).read_bytes() + b"\0a code-only change\0")
    program.chmod(0o755)
    common = {"name": PREFIX + "cache", "compression": "gzip", "layer_cache": str(tmp_path / "cache"),
              "backtracer": str(Path(built["path"]).parent / "swift-backtrace-static")}
    cold = oci_image({**common, "executable": built["path"], "dest": str(tmp_path / "cold")})
    assert not any(layer["cached"] for layer in cold["layers"])
    warm = oci_image({**common, "executable": str(program), "dest": str(tmp_path / "warm")})
    assert [layer["cached"] for layer in warm["layers"]] == [True, True, True, False]
    assert [layer["digest"] for layer in warm["layers"][:3]] == [layer["digest"] for layer in cold["layers"][:3]]
    uncached = oci_image({**common, "executable": str(program), "layer_cache": "", "dest": str(tmp_path / "fresh")})
    assert uncached["digest"] == warm["digest"], "a cached blob is the same bytes"


def test_zstd_layers_are_pushed_and_the_registry_serves_them(registry, tmp_path):
    name = f"{registry.host}/{PREFIX}zstd"
    args = {"executable": product_of("hello", "static_executable", "hello")["path"], "name": name, "push": True,
            "source_date_epoch": EPOCH, "layer_cache": ""}
    zstd = oci_image({**args, "tag": "zstd", "compression": "zstd"})
    gzip = oci_image({**args, "tag": "gzip"})
    assert zstd["compression"] == "zstd" and gzip["compression"] == "gzip"
    assert zstd["image_id"] == gzip["image_id"] and zstd["digest"] != gzip["digest"]
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{name}:zstd"],
                         capture_output=True, text=True, check=True)
    assert {layer["mediaType"] for layer in json.loads(raw.stdout)["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"}
    assert not oci_image({**args, "tag": "zstd", "compression": "zstd"})["changed"]


@pytest.mark.parametrize(("extra", "needles"), [
    ({"compression": "zstd", "format": "archive"}, ("cannot go in an archive", "gzip or none")),
    ({"backtrace": False, "backtracer": "/nonexistent/swift-backtrace-static"}, ("backtrace is false",)),
    ({"backtracer": "/nonexistent/swift-backtrace-static"}, ("does not exist", "backtrace=false")),
    ({"layer_cache": "/etc/passwd"}, ("is not a directory", "empty string")),
])
def test_bad_layer_options_are_one_sentence(tmp_path, extra, needles):
    fails(hello_args(tmp_path, **extra), *needles)
    assert not (tmp_path / "out").exists()
