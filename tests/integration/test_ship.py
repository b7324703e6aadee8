"""playbooks/ship.yml against a local fleet: three systemd hosts (trixie, bookworm, bullseye), this machine's engine
as a container host, and a host that does not exist.

Each systemd host takes what its preflight says it can run: static_stdlib where glibc is new enough, the scope-all
bag on bullseye. The rollout goes on past the unreachable host when max_fail_percentage allows it, stops when it
does not, and a second run changes nothing.
"""
from __future__ import annotations

import sys
import urllib.request

import pytest
from support import (BUILD_CACHE, FIXTURES, REPO, built_fixture, host_connection, remove_tags, run_playbook,
                     start_systemd_host)

pytestmark = pytest.mark.slow

SHIP = REPO / "playbooks" / "ship.yml"
DEPLOY = REPO / "playbooks" / "deploy.yml"
BUILD = REPO / "playbooks" / "build.yml"
SUITES = ("trixie", "bookworm", "bullseye")
PORT = 8140  # inside each systemd host's own network namespace
ENGINE_PORT = 18341  # the container host is this machine, on its loopback
IMAGE = "swiftlinux-ship-test/http-service"
GHOST = "swiftlinux-test-ship-ghost"
# Unreachable the way a fleet host is: SSH to a port on 127.0.0.1 where nothing listens.
GHOST_CONNECTION = {"ansible_connection": "ansible.builtin.ssh", "ansible_host": "127.0.0.1", "ansible_port": 9,
                    "ansible_ssh_common_args": "-o ConnectTimeout=5 -o StrictHostKeyChecking=no"}


def flags(port: int) -> list[str]:
    return ["--bind", "127.0.0.1", "--port", str(port)]


def probe(port: int) -> dict:
    return {"kind": "http", "port": port, "path": "/health", "retries": 10}


@pytest.fixture(scope="module")
def fleet(docker_client):
    hosts = {suite: start_systemd_host(f"swiftlinux-test-ship-{suite}", suite) for suite in SUITES}
    yield hosts
    for container in hosts.values():
        container.remove(force=True)
    for container in docker_client.containers.list(all=True, filters={"label": "swiftlinux.test=ship"}):
        container.remove(force=True)
    remove_tags(docker_client, IMAGE + ":", "swiftlinux-previous/swiftlinux-test-ship")


def inventory(fleet, service_name: str, *, ghost_first: bool = False, engine: bool = True) -> dict:
    systemd = {host.name: host_connection(host.name) for host in fleet.values()}
    ghost = {GHOST: GHOST_CONNECTION}
    hosts = {**ghost, **systemd} if ghost_first else {**systemd, **ghost}
    groups = {
        "fleet": {"hosts": hosts, "vars": {
            "service_name": service_name, "service_port": PORT, "service_args": flags(PORT), "service_probe": probe(PORT),
            "ship_link_mode": "static_stdlib",
        }},
    }
    if engine:
        groups["engines"] = {"hosts": {"engine": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "ship_delivery": "container", "container_name": f"swiftlinux-test-{service_name}",
            "container_port": ENGINE_PORT, "container_command": flags(ENGINE_PORT),
            "container_probe": probe(ENGINE_PORT), "container_labels": {"swiftlinux.test": "ship"},
        }}}
    return {"all": {"children": groups}}


def ship_vars(**extra) -> dict:
    """The embedded http-service fixture, built where the test suite keeps its builds (prebuild made them)."""
    for mode in ("static_executable", "static_stdlib", "dynamic"):
        built_fixture("http-service", mode)
    return {"ship_package": str(FIXTURES / "http-service"), "ship_build_dir": str(BUILD_CACHE / "artifacts" / "http-service"),
            "ship_image": True, "ship_image_name": IMAGE, "ship_artifacts": ["static_stdlib", "bag-all"],
            "ship_max_fail_percentage": 30, **extra}


def health(container, port: int = PORT) -> str:
    code = (f"import urllib.request; r = urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=5); "
            "print(r.status, r.read().decode())")
    result = container.exec_run(["python3", "-c", code])
    return result.output.decode().strip() if result.exit_code == 0 else "down"


def recap(result) -> list[str]:
    """The deploy's recap task: one line per host."""
    task = next(task for play in result.report["plays"] for task in play["tasks"]
                if task["task"]["name"] == "Recap, host by host")
    return [item["msg"] for item in task["hosts"]["localhost"]["results"]]


def stats(result, host: str) -> dict:
    return result.report["stats"].get(host, {})


def test_ship_builds_then_each_host_takes_what_it_can_run_past_an_unreachable_one(fleet):
    result = run_playbook(SHIP, "localhost", ship_vars(), inventory=inventory(fleet, "ship-app"), timeout=900)
    assert stats(result, GHOST).get("unreachable") == 1, result.output[-3000:]
    assert result.rc == 4  # ansible's code for "some hosts were unreachable"
    for suite, container in fleet.items():
        assert stats(result, container.name).get("failures") == 0, (suite, result.failures)
        assert health(container) == '200 {"status":"ok"}', suite
    with urllib.request.urlopen(f"http://127.0.0.1:{ENGINE_PORT}/health", timeout=5) as answer:
        assert answer.status == 200
    lines = recap(result)
    assert "swiftlinux-test-ship-trixie: takes static_stdlib as asked" in lines
    assert "swiftlinux-test-ship-bookworm: takes static_stdlib as asked" in lines
    assert ("swiftlinux-test-ship-bullseye: static_stdlib cannot run there (glibc 2.31 is older than the required 2.35"
            in "\n".join(lines))
    assert any(line.startswith("swiftlinux-test-ship-bullseye:") and line.endswith("-> takes the scope-all bag instead")
               for line in lines), lines
    assert f"{GHOST}: not deployed; it failed or was unreachable (see above)" in lines
    assert any(line.startswith(f"engine: runs the image {IMAGE}:") for line in lines), lines
    bullseye = fleet["bullseye"].exec_run(["readlink", "-f", "/opt/ship-app/current/.swiftlinux/ship-app"])
    assert bullseye.output.decode().strip().startswith("/opt/ship-app/releases/"), bullseye.output

    # The report: where it is, what each host took and why, and the portability matrix beside the prediction.
    said = [task["hosts"]["localhost"]["msg"] for play in result.report["plays"] for task in play["tasks"]
            if task["task"]["name"] == "Say where the report is"]
    report = BUILD_CACHE / "artifacts" / "http-service" / "report"
    assert said == [f"The ship report is at {report}/index.html (chart: {report}/sizes.png)"]
    assert (report / "sizes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (report / "index.html").read_text()
    for container in fleet.values():
        assert f"<td>{container.name}</td>" in page
    assert "takes the scope-all bag instead" in page and "failed or unreachable" in page
    matrix = page.split("<h2>Portability matrix</h2>", 1)[1]
    assert "version `GLIBC_2." in matrix  # static_stdlib really refused on bullseye, as predicted
    assert "refused (glibc 2.31 is older than the required 2.35" in matrix
    assert "exec /app/bin/http-service: no such file or directory" in matrix  # the bag's launcher needs /bin/sh
    assert "its launcher is a shell script and the host has no /bin/sh" in matrix  # and the preflight says so
    assert "mismatch" not in matrix.split("</tr>", 1)[1]  # every prediction matches what happened


def test_second_run_changes_nothing(fleet):
    result = run_playbook(DEPLOY, "localhost", ship_vars(ship_hosts="all:!localhost:!" + GHOST),
                          inventory=inventory(fleet, "ship-app"))
    assert result.rc == 0, result.failures or result.output[-3000:]
    for host in [c.name for c in fleet.values()] + ["engine"]:
        assert stats(result, host).get("changed") == 0, (host, stats(result, host))


def test_rollout_stops_when_a_batch_fails_beyond_max_fail_percentage(fleet):
    result = run_playbook(DEPLOY, "localhost", ship_vars(ship_serial=1, ship_max_fail_percentage=0),
                          inventory=inventory(fleet, "ship-halt", ghost_first=True, engine=False))
    assert result.rc != 0
    assert stats(result, GHOST).get("unreachable") == 1
    for container in fleet.values():  # the later batches never ran
        assert container.exec_run(["test", "-e", "/opt/ship-halt"]).exit_code != 0, container.name
        assert not stats(result, container.name).get("changed"), stats(result, container.name)


def test_fallback_refuse_fails_that_host_and_changes_nothing_there(fleet):
    bullseye = fleet["bullseye"]
    result = run_playbook(DEPLOY, "localhost", ship_vars(ship_fallback="refuse", ship_hosts=bullseye.name),
                          inventory=inventory(fleet, "ship-strict", engine=False))
    assert result.rc != 0
    assert len(result.failures) == 1, result.failures
    assert result.failures[0].startswith(f"{bullseye.name}: static_stdlib cannot run there (glibc 2.31")
    assert "-> refused, as ship_fallback is refuse. Nothing was changed on the host." in result.failures[0]
    assert bullseye.exec_run(["test", "-e", "/opt/ship-strict"]).exit_code != 0


@pytest.mark.parametrize(("extra", "needle"), [
    ({"ship_delivery": "ftp"}, "ship_delivery must be service or container (got \"ftp\")"),
    ({"ship_fallback": "largest"}, "ship_fallback smallest or refuse (got \"largest\")"),
    ({"ship_link_mode": "dynamic"}, "ship_link_mode empty or one of static_stdlib, bag-all (got \"dynamic\")"),
], ids=["delivery", "fallback", "unknown-artifact"])
def test_bad_ship_settings_give_one_clear_error_before_the_host_changes(fleet, extra, needle):
    bookworm = fleet["bookworm"]
    result = run_playbook(DEPLOY, "localhost", ship_vars(ship_hosts=bookworm.name, **extra),
                          inventory=inventory(fleet, "ship-bad", engine=False))
    assert result.rc != 0
    assert len(result.failures) == 1 and needle in result.failures[0], result.failures
    assert bookworm.exec_run(["test", "-e", "/opt/ship-bad"]).exit_code != 0


def test_build_without_a_package_says_what_to_set():
    result = run_playbook(BUILD, "localhost", {"ship_modes": ["static_executable"]})
    assert result.rc != 0
    assert len(result.failures) == 1 and "Set ship_package to your Swift package's directory" in result.failures[0]
