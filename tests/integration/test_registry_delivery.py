"""Registry delivery for systemd hosts: the controller pushes a release once (release_push) and each host pulls it
by digest with the release module, without Docker, from Debian's docker-registry on 127.0.0.1.

The hosts share this machine's loopback (network mode host) to reach the registry, so each serves on a port of its
own. A code-only release (the same bag with a changed program) uploads and fetches only the program layer.
"""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from support import REPO, built_fixture, run_module, run_playbook, start_systemd_host

pytestmark = pytest.mark.slow

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "service.yml"
HOSTS = [f"swiftlinux-test-pull-{index}" for index in range(3)]
BASE_PORT = 18460


@pytest.fixture(scope="module")
def fleet():
    hosts = [start_systemd_host(name, network_mode="host") for name in HOSTS]
    yield hosts
    for host in hosts:
        host.remove(force=True)


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    """http-service's dynamic build bagged with scope all: runtime libraries and a program, as fleets ship it."""
    built = built_fixture("http-service", "dynamic")["products"]["http-service"]
    dest = tmp_path_factory.mktemp("pull") / "bag-all"
    result = run_module("shared_objects", {"executables": [built["path"]], "resources": built["resources"],
                                           "scope": "all", "dest": str(dest)})
    assert not result.get("failed"), result.get("msg")
    return dest


def inventory(reference: str, artifact) -> dict:
    hosts = {}
    for index, name in enumerate(HOSTS):
        port = BASE_PORT + index
        hosts[name] = {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3",
                       "service_args": ["--bind", "127.0.0.1", "--port", str(port)], "service_port": port,
                       "service_probe": {"kind": "http", "port": port, "path": "/health"}}
    return {"all": {"hosts": hosts, "vars": {"service_name": "pull-http", "service_artifact": str(artifact),
                                             "service_pull_reference": reference}}}


def code_only_release(bag, destination):
    """The same bag with a changed program: a byte appended to the executable (ELF ignores trailing bytes), its
    checksum updated in bag.json; every library stays as it was."""
    shutil.copytree(bag, destination, symlinks=True)
    program = destination / "libexec" / "http-service"
    program.write_bytes(program.read_bytes() + b"\0")
    manifest = json.loads((destination / "bag.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "libexec/http-service":
            entry["sha256"], entry["size"] = hashlib.sha256(program.read_bytes()).hexdigest(), program.stat().st_size
    (destination / "bag.json").write_text(json.dumps(manifest))
    return destination


def deploy(reference, artifact):
    """The run's result, and each host's result of the release task ({} for a host that had everything in place,
    where the tasks that change the host were skipped as one)."""
    result = run_playbook(PLAYBOOK, HOSTS[0], {}, inventory=inventory(reference, artifact), timeout=900)
    assert result.rc == 0, result.failures or result.output[-3000:]
    releases, in_place = {}, {}
    for play in result.report["plays"]:
        for task in play["tasks"]:
            if "verify it and switch to it" in task["task"]["name"]:
                releases.update(task["hosts"])
            if task["task"]["name"].endswith("unless all is in place"):
                in_place.update({host: answer.get("skipped") is True for host, answer in task["hosts"].items()})
    assert set(in_place) == set(HOSTS), in_place
    assert set(releases) | {host for host in HOSTS if in_place[host]} == set(HOSTS), (releases, in_place)
    return result, {host: releases.get(host, {}) for host in HOSTS}


def test_hosts_pull_once_pushed_releases_and_a_code_only_release_moves_the_program_layer(fleet, registry, bag,
                                                                                         tmp_path):
    name = f"{registry.host}/swiftlinux-test/pull-http"

    pushed = run_module("release_push", {"path": str(bag), "name": name})
    assert not pushed.get("failed"), pushed.get("msg")
    roles = {layer["role"]: layer for layer in pushed["layers"]}
    assert set(roles) == {"runtime", "program"}
    assert pushed["uploaded_bytes"] >= roles["runtime"]["size"] + roles["program"]["size"]
    again = run_module("release_push", {"path": str(bag), "name": name})  # the fleet's size plays no part
    assert (again["changed"], again["uploaded_bytes"], again["reference"]) == (False, 0, pushed["reference"])

    result, releases = deploy(pushed["reference"], bag)
    for host in HOSTS:
        assert releases[host]["fetched_bytes"] == roles["runtime"]["size"] + roles["program"]["size"], host
        assert all(layer["fetched"] for layer in releases[host]["layers"])
    for index, container in enumerate(fleet):
        answer = container.exec_run(["python3", "-c", "import urllib.request as u; print(u.urlopen("
                                     f"'http://127.0.0.1:{BASE_PORT + index}/health').status)"])
        assert answer.output.decode().strip() == "200", answer.output
        assert "docker" not in container.exec_run(["sh", "-c", "command -v docker || true"]).output.decode()

    rerun, releases = deploy(pushed["reference"], bag)
    assert all(rerun.report["stats"][host]["changed"] == 0 for host in HOSTS), rerun.report["stats"]
    # host_info found the release current and intact on every host, so the release task did not run: nothing fetched
    assert all(releases[host] == {} for host in HOSTS), releases

    changed = code_only_release(bag, tmp_path / "bag-code-only")
    second = run_module("release_push", {"path": str(changed), "name": name})
    assert not second.get("failed"), second.get("msg")
    new_roles = {layer["role"]: layer for layer in second["layers"]}
    assert new_roles["runtime"]["digest"] == roles["runtime"]["digest"]
    assert new_roles["program"]["digest"] != roles["program"]["digest"]
    # the program layer and the small config and manifest: nothing of the runtime layer goes again
    assert second["uploaded_bytes"] < new_roles["program"]["size"] + 64 * 1024
    print(f"\ncode-only release: uploaded {second['uploaded_bytes']} bytes; program layer "
          f"{new_roles['program']['size']}, runtime layer {new_roles['runtime']['size']} bytes")

    result, releases = deploy(second["reference"], changed)
    for host in HOSTS:
        assert releases[host]["fetched_bytes"] == new_roles["program"]["size"], releases[host]
        fetched = {layer["role"]: layer["fetched"] for layer in releases[host]["layers"]}
        assert fetched == {"runtime": False, "program": True}
    for container in fleet:  # the host's blob cache keeps what its releases came from, nothing else
        blobs = container.exec_run(["ls", "/opt/pull-http/.blobs/sha256"]).output.decode().split()
        assert set(blobs) <= {d["digest"].split(":")[1] for d in pushed["layers"] + second["layers"]}


@pytest.mark.parametrize(("reference", "needle"), [
    ("127.0.0.1:9/x/y:latest", "is not host[:port]/repository@sha256:<64 hex digits>"),
    ("127.0.0.1:9/x/y@sha256:" + "0" * 64, "cannot reach registry 127.0.0.1:9"),
], ids=["tag-not-digest", "registry-down"])
def test_bad_pull_references_give_one_clear_error_and_change_nothing(tmp_path, reference, needle):
    root = tmp_path / "root"
    root.mkdir()
    result = run_module("release", {"root": str(root), "release_id": "r1", "files": {}, "pull": {"reference": reference}})
    assert result.get("failed") is True
    assert needle in result["msg"], result["msg"]
    assert "no release is current" in result["msg"]
    assert "Traceback" not in json.dumps(result)
    assert sorted(p.name for p in root.iterdir() if p.name != ".swiftlinux-release.lock") in ([], ["releases"])


def test_a_digest_the_registry_lacks_is_named(tmp_path, registry):
    root = tmp_path / "root"
    root.mkdir()
    reference = f"{registry.host}/swiftlinux-test/none@sha256:" + "1" * 64
    result = run_module("release", {"root": str(root), "release_id": "r1", "files": {}, "pull": {"reference": reference}})
    assert result.get("failed") is True
    assert "has no swiftlinux-test/none@sha256:" in result["msg"] and "release_push" in result["msg"]


def test_push_without_a_registry_host_is_refused(bag):
    result = run_module("release_push", {"path": str(bag), "name": "team/api"})
    assert result.get("failed") is True
    assert "has no registry host" in result["msg"]


def test_ship_pushes_once_and_every_host_pulls(fleet, registry, bag):
    """playbooks/deploy.yml with ship_registry: one push from the controller, a pull on each host."""
    deploy_playbook = REPO / "playbooks" / "deploy.yml"
    variables = {"ship_artifacts": [{"name": "bag-all", "path": str(bag)}],
                 "ship_registry": f"{registry.host}/swiftlinux-test/ship"}
    stock = inventory("", bag)
    stock["all"]["vars"].pop("service_pull_reference")
    stock["all"]["vars"]["service_name"] = "ship-pull-http"
    for index, host in enumerate(HOSTS):  # ports of their own, beside the service the test above left running
        port = BASE_PORT + 10 + index
        stock["all"]["hosts"][host].update(service_args=["--bind", "127.0.0.1", "--port", str(port)], service_port=port,
                                           service_probe={"kind": "http", "port": port, "path": "/health"})
    result = run_playbook(deploy_playbook, HOSTS[0], variables, inventory=stock, timeout=900)
    assert result.rc == 0, result.failures or result.output[-3000:]
    pushes = [task["hosts"]["localhost"] for play in result.report["plays"] for task in play["tasks"]
              if task["task"]["name"].startswith("Push every artifact to the registry")]
    assert len(pushes) == 1 and len(pushes[0]["results"]) == 1
    reference = pushes[0]["results"][0]["reference"]
    pulled = [task["hosts"] for play in result.report["plays"] for task in play["tasks"]
              if "verify it and switch to it" in task["task"]["name"]]
    assert sorted(pulled[0]) == sorted(HOSTS)
    for host in HOSTS:
        assert pulled[0][host]["changed"] and pulled[0][host]["fetched_bytes"] > 0
        assert pulled[0][host]["invocation"]["module_args"]["pull"]["reference"] == reference
