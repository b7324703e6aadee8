"""The container role against this machine's Docker engine: delivery, hardening, probes, rollback, bad inputs.

The role targets "localhost" here (this machine is a Docker host with the venv's requests); molecule/container
runs it on the three systemd test hosts. Every bad input must leave the running container exactly as it was.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import tarfile
import urllib.request

import docker
import pytest

from support import REPO, remove_tags, run_module, run_playbook, swift_build_fixture

pytestmark = pytest.mark.slow

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "container.yml"
IMAGE = "swiftlinux-test-container/http"  # its own prefix: test_images removes every swiftlinux-test/ tag when it ends
PORT = 18311


@pytest.fixture(scope="module")
def engine(docker_client):
    def clean():
        for container in docker_client.containers.list(all=True, filters={"label": "swiftlinux.test=container-role"}):
            container.remove(force=True)
        remove_tags(docker_client, IMAGE + ":", "swiftlinux-previous/ct-")

    clean()  # a run that was killed leaves its images, and the check-mode test needs v2 absent
    yield docker_client
    clean()


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """Image archives: http-service as v1 (answers /health) and hello as v2 (exits at once, never healthy)."""
    work = tmp_path_factory.mktemp("container-images")
    built = {}
    for tag, fixture in (("v1", "http-service"), ("v2", "hello")):
        executable = swift_build_fixture(fixture, "static_executable") / fixture
        result = run_module("oci_image", {"executable": str(executable), "name": IMAGE, "tag": tag,
                                          "format": "archive", "dest": str(work / f"{tag}.tar")})
        assert not result.get("failed"), result
        built[tag] = {"path": str(work / f"{tag}.tar"), "id": result["image_id"], "reference": f"{IMAGE}:{tag}"}
    return built


def flags(port: int) -> list[str]:
    """The http-service fixture's own flags: the role knows none of them, so every test passes them."""
    return ["--bind", "127.0.0.1", "--port", str(port)]


def http_probe(port: int) -> dict:
    return {"kind": "http", "port": port, "path": "/health", "retries": 6}


def deploy(name: str, image: dict | None, port: int = PORT, check: bool = False, **extra):
    variables = dict(container_name=name, container_port=port, container_command=flags(port),
                     container_probe=http_probe(port), container_labels={"swiftlinux.test": "container-role"})
    if image:
        variables.update(container_image=image["reference"], container_image_archive=image["path"])
    variables.update(extra)
    return run_playbook(PLAYBOOK, "localhost", variables, check=check)


def health(port: int = PORT) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            return f"{answer.status} {answer.read().decode()}"
    except OSError as exc:
        return f"down ({exc})"


def running_image(engine, name: str) -> str | None:
    try:
        container = engine.containers.get(name)
    except docker.errors.NotFound:
        return None
    return container.image.id if container.status == "running" else f"{container.status}:{container.image.id}"


@pytest.fixture(scope="module")
def serving(engine, archives):
    """Container ct-app running v1, deployed once; the tests below must leave it serving v1."""
    result = deploy("ct-app", archives["v1"])
    assert result.rc == 0, result.failures or result.output[-3000:]
    assert health() == '200 {"status":"ok"}'
    return engine


def test_container_runs_hardened_from_a_delivered_archive(serving, archives):
    container = serving.containers.get("ct-app")
    host = container.attrs["HostConfig"]
    assert container.image.id == archives["v1"]["id"]
    assert container.attrs["Config"]["User"] == "65532:65532"
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and not host["Privileged"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Tmpfs"]["/tmp"].startswith("rw,noexec,nosuid,nodev,size=16m")
    assert host["RestartPolicy"]["Name"] == "unless-stopped" and host["PidsLimit"] == 256
    # The run settings the role applied are recorded with the container, for an exact rollback.
    run = json.loads(container.labels["io.swiftlinux.deploy.run"])
    assert run["command"] == container.attrs["Config"]["Cmd"] == flags(PORT)
    assert run["probe"]["kind"] == "http" and run["probe"]["path"] == "/health"
    assert "--check" not in json.dumps(container.attrs["Config"]["Cmd"])


def test_http_probe_from_the_host_serves_a_scratch_image_without_a_shell(serving):
    container = serving.containers.get("ct-app")
    shell = container.exec_run(["/bin/sh", "-c", "true"])
    assert shell.exit_code != 0 and b"no such file" in shell.output.lower(), shell
    assert json.loads(container.labels["io.swiftlinux.deploy.run"])["probe"]["kind"] == "http"


def gate_ran(result) -> bool:
    """Whether the gate's calls ran: its last step, reading the container's state after the probe, was included."""
    return any(name.endswith("Read the container's state after the probe") and not answer.get("skipped")
               for name, answer in result.results.items())


def started(result) -> bool:
    """Whether docker_container ran (tasks/start.yml was included and its task not skipped)."""
    return any("Run the image read-only" in name and not answer.get("skipped")
               for name, answer in result.results.items())


def test_second_run_changes_nothing(serving, archives):
    again = deploy("ct-app", archives["v1"])
    assert again.rc == 0 and again.changed == 0, again.output[-3000:]
    # host_info's one try of the probe passed and nothing changed: the gate's two calls were skipped
    early = [r for name, r in again.results.items() if name.endswith("Look for the Docker engine's socket and "
                                                                     "whether the port is taken")]
    assert early[0]["host"]["probe"]["ok"] is True, early
    assert not gate_ran(again)
    # the container was already this image with these settings: docker_container was not even called
    assert not started(again), [name for name in again.results if "Run the image" in name]


def test_a_setting_changed_behind_the_roles_back_is_put_back(serving, archives):
    """docker update changes the restart policy without touching the labels: the container is not in place, so
    docker_container runs and puts it back."""
    serving.containers.get("ct-app").update(restart_policy={"Name": "no"})
    again = deploy("ct-app", archives["v1"])
    assert again.rc == 0 and again.changed > 0, again.failures or again.output[-3000:]
    assert started(again)
    assert serving.containers.get("ct-app").attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert running_image(serving, "ct-app") == archives["v1"]["id"] and health() == '200 {"status":"ok"}'


def test_check_mode_reports_the_new_image_and_changes_nothing(serving, archives):
    planned = deploy("ct-app", archives["v2"], check=True)
    assert planned.rc == 0 and planned.changed > 0, planned.failures or planned.output[-3000:]
    assert running_image(serving, "ct-app") == archives["v1"]["id"]
    assert not serving.images.list(name=archives["v2"]["reference"])


def run_settings(engine, name: str) -> tuple:
    container = engine.containers.get(name)
    return (container.image.id, container.attrs["Config"]["Cmd"], sorted(container.attrs["Config"]["Env"]),
            container.labels["io.swiftlinux.deploy.run"])


def test_failing_image_change_goes_back_to_the_previous_image_and_its_settings(serving, archives):
    before = run_settings(serving, "ct-app")
    result = deploy("ct-app", archives["v2"], container_command=["--crash"], container_env={"RELEASE": "2"})
    assert result.rc != 0
    message = result.failures[-1]
    assert f"{IMAGE}:v2 ({archives['v2']['id']}) in container ct-app on localhost failed its gate: " in message
    assert f"http://127.0.0.1:{PORT}/health" in message and "exit code" in message, message
    assert (f"Went back to the previous image {archives['v1']['id']} with its previous run settings, which passes "
            "its probe again.") in message
    # The previous image with exactly its previous command line, environment and recorded settings.
    assert run_settings(serving, "ct-app") == before and before[1] == flags(PORT)
    assert health() == '200 {"status":"ok"}'
    # The previous image is kept under a name of its own, so a prune cannot take the rollback target.
    assert serving.images.get("swiftlinux-previous/ct-app:previous").id == archives["v1"]["id"]
    # The next run with the good image brings the container back under its own name.
    fixed = deploy("ct-app", archives["v1"])
    assert fixed.rc == 0 and health() == '200 {"status":"ok"}', fixed.failures
    assert serving.containers.get("ct-app").attrs["Config"]["Image"] == archives["v1"]["reference"]
    assert run_settings(serving, "ct-app")[1:] == before[1:]


def test_failing_config_only_change_goes_back_to_the_previous_settings(serving, archives):
    before = run_settings(serving, "ct-app")
    result = deploy("ct-app", archives["v1"], container_command=["--bind", "127.0.0.1", "--port", "not-a-port"],
                    container_env={"RELEASE": "broken"})
    assert result.rc != 0
    message = result.failures[-1]
    assert f"{IMAGE}:v1 ({archives['v1']['id']}) in container ct-app on localhost failed its gate: " in message
    assert "not-a-port" in message.split("last log lines:")[1], message  # the program's own complaint, from its log
    assert f"Went back to the previous image {archives['v1']['id']} with its previous run settings" in message
    assert run_settings(serving, "ct-app") == before and health() == '200 {"status":"ok"}'


def test_failing_first_image_is_stopped_with_one_clear_message(engine, archives):
    worker = dict(port=18312, container_port=None, container_probe={"kind": "none", "seconds": 3})
    result = deploy("ct-first", archives["v2"], **worker)
    assert result.rc != 0
    message = result.failures[-1]
    assert f"{IMAGE}:v2 ({archives['v2']['id']}) in container ct-first on localhost failed its gate: " in message
    assert "stay up for 3 s" in message and "exit code 0" in message, message
    assert "Hello, world!" in message.split("last log lines:")[1], message
    assert message.endswith("It was the first image, so the container is stopped."), message
    assert running_image(engine, "ct-first") == f"exited:{archives['v2']['id']}"
    # Again with the same image: nothing to go back to, so it is stopped again rather than left restarting.
    again = deploy("ct-first", archives["v2"], **worker)
    assert again.rc != 0
    assert "The container was not running before this run, so it is stopped again." in again.failures[-1]
    assert running_image(engine, "ct-first") == f"exited:{archives['v2']['id']}"


def test_rollback_reads_the_settings_of_a_container_the_role_did_not_label(engine, archives):
    """A container started without the run-settings label (an older role, or by hand) is restored as it ran."""
    port = 18317
    engine.images.load(open(archives["v1"]["path"], "rb").read())
    engine.containers.run(archives["v1"]["reference"], name="ct-legacy", command=flags(port), network_mode="host",
                          user="65532:65532", read_only=True, environment={"KEEP": "me"}, detach=True,
                          tmpfs={"/tmp": "rw,size=8m"}, restart_policy={"Name": "unless-stopped"},
                          labels={"swiftlinux.test": "container-role"})
    result = deploy("ct-legacy", archives["v2"], port=port, container_command=[], container_env={"KEEP": "not me"})
    assert result.rc != 0
    assert f"Went back to the previous image {archives['v1']['id']} with its previous run settings" \
        in result.failures[-1]
    container = engine.containers.get("ct-legacy")
    assert container.image.id == archives["v1"]["id"] and container.attrs["Config"]["Cmd"] == flags(port)
    assert "KEEP=me" in container.attrs["Config"]["Env"] and health(port) == '200 {"status":"ok"}'
    assert "size=8m" in container.attrs["HostConfig"]["Tmpfs"]["/tmp"]


KIND_PORT = 18316
KIND_URL = f"http://127.0.0.1:{KIND_PORT}/health"


@pytest.mark.parametrize("probe", [
    {"kind": "none", "seconds": 2},
    {"kind": "tcp", "port": KIND_PORT},
    {"kind": "command",
     "command": [sys.executable, "-c", f"import urllib.request; urllib.request.urlopen('{KIND_URL}')"]},
    # The program's own self-probe is an opt-in: a command run inside the container.
    {"kind": "command", "inside": True, "command": ["/app/http-service", "--check", KIND_URL]},
], ids=["none", "tcp", "command-on-host", "command-inside"])
def test_every_probe_kind_gates_a_serving_program(engine, archives, probe):
    result = deploy("ct-kinds", archives["v1"], port=KIND_PORT, container_port=None, container_probe=probe,
                    container_healthcheck=["/app/http-service", "--check", KIND_URL])
    assert result.rc == 0, result.failures or result.output[-3000:]
    container = engine.containers.get("ct-kinds")
    assert json.loads(container.labels["io.swiftlinux.deploy.run"])["probe"]["kind"] == probe["kind"]
    assert container.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "/app/http-service", "--check", KIND_URL]
    assert health(KIND_PORT) == '200 {"status":"ok"}'
    again = deploy("ct-kinds", archives["v1"], port=KIND_PORT, container_port=None, container_probe=probe,
                   container_healthcheck=["/app/http-service", "--check", KIND_URL])
    assert again.rc == 0 and again.changed == 0, again.output[-3000:]
    # tried once from the host first, so an unchanged run skips the gate; none and inside the container are not
    assert gate_ran(again) == (probe["kind"] == "none" or probe.get("inside", False)), probe


OWN_PORT = 18318  # its own: ct-kinds above may still hold KIND_PORT


def test_programs_that_are_not_ours_run_with_generic_probes_only(engine, tmp_path):
    # dep-server takes <host> <port> and serves /healthz; worker listens on nothing. No --check anywhere.
    images = {}
    for fixture in ("dep-server", "worker"):
        executable = swift_build_fixture(fixture, "static_executable") / fixture
        result = run_module("oci_image", {"executable": str(executable), "name": IMAGE, "tag": fixture,
                                          "format": "archive", "dest": str(tmp_path / f"{fixture}.tar")})
        assert not result.get("failed"), result
        images[fixture] = {"path": str(tmp_path / f"{fixture}.tar"), "reference": f"{IMAGE}:{fixture}"}
    try:
        result = deploy("ct-depserver", images["dep-server"], port=OWN_PORT,
                        container_command=["127.0.0.1", str(OWN_PORT)],
                        container_probe={"kind": "http", "port": OWN_PORT, "path": "/healthz", "retries": 10})
        assert result.rc == 0, result.failures or result.output[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{OWN_PORT}/healthz", timeout=5) as reply:
            assert reply.status == 200
        result = deploy("ct-worker", images["worker"], port=None, container_port=None, container_command=[],
                        container_network_mode="none", container_probe={"kind": "none", "seconds": 3})
        assert result.rc == 0, result.failures or result.output[-3000:]
        worker = engine.containers.get("ct-worker")
        assert worker.status == "running" and b"heartbeat 1 " in worker.logs()
        assert not engine.api.inspect_image(images["worker"]["reference"])["Config"].get("Healthcheck")
    finally:
        for name in ("ct-depserver", "ct-worker"):
            for box in engine.containers.list(all=True, filters={"name": f"^{name}$"}):
                box.remove(force=True)


def test_pull_from_a_local_registry(engine, registry, archives):
    reference = f"{registry.host}/swiftlinux-test-container/pulled"
    pushed = run_module("oci_image", {
        "executable": str(swift_build_fixture("http-service", "static_executable") / "http-service"),
        "name": reference, "tag": "1", "push": True, "format": "archive",
        "dest": str(REPO / ".build" / "test-cache" / "container-pulled.tar")})
    assert pushed.get("pushed"), pushed
    image = {"reference": f"{reference}:1", "path": ""}
    try:
        first = deploy("ct-pulled", image, port=18313, container_image_archive="")
        assert first.rc == 0, first.failures or first.output[-3000:]
        assert running_image(engine, "ct-pulled") == pushed["image_id"] and health(18313).startswith("200")
        again = deploy("ct-pulled", image, port=18313, container_image_archive="")
        assert again.rc == 0 and again.changed == 0, again.output[-3000:]
    finally:
        engine.images.remove(f"{reference}:1", force=True)


def test_pull_with_registry_credentials(engine, auth_registry, archives):
    reference = f"{auth_registry.host}/swiftlinux-test-container/private"
    pushed = run_module("oci_image", {
        "executable": str(swift_build_fixture("http-service", "static_executable") / "http-service"),
        "name": reference, "tag": "1", "push": True, "registry_username": auth_registry.username,
        "registry_password": auth_registry.password, "format": "archive",
        "dest": str(REPO / ".build" / "test-cache" / "container-private.tar")})
    assert pushed.get("pushed"), pushed
    image = {"reference": f"{reference}:1", "path": ""}
    login = dict(container_image_archive="", container_registry_username=auth_registry.username)
    try:
        wrong = deploy("ct-private", image, port=18315, container_registry_password="wrong", **login)
        assert wrong.rc != 0 and running_image(engine, "ct-private") is None
        assert f"localhost could not log in to the registry of {reference}:1 as swiftlinux" in wrong.failures[-1]
        assert "Check container_registry_username and container_registry_password" in wrong.failures[-1]
        right = deploy("ct-private", image, port=18315, container_registry_password=auth_registry.password, **login)
        assert right.rc == 0, right.failures or right.output[-3000:]
        assert running_image(engine, "ct-private") == pushed["image_id"] and health(18315).startswith("200")
    finally:
        engine.images.remove(f"{reference}:1", force=True)


# ---- bad inputs: one clear error each, and ct-app still serves v1 -------------------------------

def refused(engine, archives, result, *needles):
    assert result.rc != 0
    message = result.failures[-1]
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in result.output
    assert running_image(engine, "ct-app") == archives["v1"]["id"] and health() == '200 {"status":"ok"}'


def test_full_archive_directory_gives_one_clear_error(serving, archives, tmp_path):
    # The host must lack v2 by name, or nothing is shipped (earlier tests loaded it).
    remove_tags(serving, archives["v2"]["reference"])
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        result = deploy("ct-app", archives["v2"], container_archive_dir=str(small))
        assert list(small.iterdir()) == [], "the partial copy was left behind"
    finally:
        subprocess.run(["umount", str(small)], check=True)
    refused(serving, archives, result, "localhost could not receive or load", f"Free that much space in {small}",
            "The running container was not touched")


def test_missing_archive(serving, archives, tmp_path):
    missing = {"reference": archives["v1"]["reference"], "path": str(tmp_path / "nope.tar")}
    refused(serving, archives, deploy("ct-app", missing),
            f"image archive {tmp_path / 'nope.tar'} does not exist", "fix the path")


def test_damaged_archive_is_refused_by_its_digests(serving, archives, tmp_path):
    damaged = tmp_path / "damaged.tar"
    data = bytearray(open(archives["v1"]["path"], "rb").read())
    with tarfile.open(archives["v1"]["path"]) as archive:
        biggest = max(archive.getmembers(), key=lambda member: member.size)  # the app layer
    data[biggest.offset_data + biggest.size // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    refused(serving, archives, deploy("ct-app", {"reference": archives["v1"]["reference"], "path": str(damaged)}),
            f"layer {biggest.name} has sha256", "the archive is damaged or was altered, write it again")


@pytest.mark.parametrize(("probe", "extra", "needle"), [
    ({"kind": "ping"}, {}, "ping"),
    ({"kind": "http"}, {}, "a http probe needs a port"),
    ({"kind": "tcp", "port": 70000}, {}, "out of range"),
    ({"kind": "http", "port": PORT, "path": "health"}, {}, "must start with '/'"),
    ({"kind": "command"}, {}, "a command probe needs command"),
    ({"kind": "none", "retries": -1}, {}, "retries must be 0 or more"),
    ({"kind": "http", "port": PORT, "colour": "red"}, {}, "colour"),
    ({"kind": "tcp", "port": PORT, "inside": True}, {}, "inside: true runs a command inside the container"),
    ({"kind": "tcp", "port": PORT}, {"container_network_mode": "none"}, "no network the host can reach"),
], ids=["kind", "no-port", "port-range", "path", "no-command", "retries", "unknown-key", "inside", "network-none"])
def test_bad_probe_descriptions_change_nothing(serving, archives, probe, extra, needle):
    refused(serving, archives, deploy("ct-app", archives["v2"], container_probe=probe, **extra),
            "container_probe", needle, "Nothing was changed")


@pytest.mark.parametrize("name", ["../ct-app", "ct/app", "ct..app", "-ct"])
def test_container_name_with_path_characters(serving, archives, name):
    refused(serving, archives, deploy(name, archives["v1"]),
            f'container_name "{name}" may only hold letters, digits', "Nothing was changed")


def test_port_already_in_use(serving, archives):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 18314))
        squatter.listen()
        result = deploy("ct-other", archives["v1"], port=18314)
    refused(serving, archives, result, "Port 18314 on localhost is already in use by another program",
            "Choose another container_port")
    assert running_image(serving, "ct-other") is None


def test_archive_without_the_named_image(serving, archives):
    wrong = {"reference": f"{IMAGE}:v9", "path": archives["v1"]["path"]}
    refused(serving, archives, deploy("ct-app", wrong), f"holds {IMAGE}:v1, not {IMAGE}:v9")


def test_unknown_pull_policy(serving, archives):
    refused(serving, archives, deploy("ct-app", archives["v1"], container_pull="sometimes"),
            "container_pull", "always, missing")


def test_no_docker_engine(serving, archives):
    refused(serving, archives, deploy("ct-app", archives["v1"], container_docker_host="unix:///run/no-docker.sock"),
            "localhost has no Docker engine socket at /run/no-docker.sock", "Install and start Docker")


def test_image_that_cannot_be_pulled(serving, archives):
    image = {"reference": "127.0.0.1:1/swiftlinux-test/none:1", "path": ""}
    refused(serving, archives, deploy("ct-app", image, container_image_archive=""),
            "localhost could not pull 127.0.0.1:1/swiftlinux-test/none:1", "The running container was not touched")


# ---- image_archive_info on archives other tools wrote ---------------------------------------------

def test_docker_save_archive_is_described_with_the_ids_docker_uses(serving, archives, tmp_path):
    saved = tmp_path / "saved.tar"
    with open(saved, "wb") as handle:
        # `docker save <name:tag>`: the archive carries that name (Image.save(named=True) would pick the first tag).
        for chunk in serving.api.get_image(archives["v1"]["reference"]):
            handle.write(chunk)
    info = run_module("image_archive_info", {"path": str(saved)})
    assert info["image_id"] == archives["v1"]["id"] and info["repo_tags"] == [archives["v1"]["reference"]]
    assert info["machine"] == "x86_64" and info["user"] == "65532:65532"
    assert info["entrypoint"] == ["/app/http-service"]


def test_a_file_that_is_not_an_archive(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_text("not a tar file\n")
    result = run_module("image_archive_info", {"path": str(junk)})
    assert result["failed"] and f"{junk} is not a readable uncompressed tar" in result["msg"], result
