"""Socket activation: systemd holds the service's listening socket, so a rolling deploy refuses no request.

A client inside the host polls /health on 127.0.0.1 every 20 ms while releases follow one another (each a new
environment, so each restarts the program). With socket activation it sees no failed request; without it, the
requests that arrive while the program restarts are refused (measured and printed, docs/ship.md quotes it).
"""
from __future__ import annotations

import json
import time

import pytest
from support import REPO, run_playbook, start_systemd_host, swift_build_fixture

pytestmark = pytest.mark.slow

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "service.yml"
PORT = 8150
POLLER = r"""
import json, os, sys, time, urllib.request
ok = failed = 0
errors = {}
while not os.path.exists("/tmp/poll.stop"):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/health", timeout=5) as answer:
            answer.read()
        ok += 1
    except Exception as exc:
        failed += 1
        errors[type(exc).__name__ + ": " + str(getattr(exc, "reason", exc))] = 1
    time.sleep(0.02)
json.dump({"ok": ok, "failed": failed, "errors": sorted(errors)}, open("/tmp/poll.json.tmp", "w"))
os.rename("/tmp/poll.json.tmp", "/tmp/poll.json")
""" % PORT


@pytest.fixture(scope="module")
def host():
    container = start_systemd_host("swiftlinux-test-socket-activation")
    yield container
    container.remove(force=True)


def deploy(container, release: int, activation: bool):
    program = swift_build_fixture("http-service", "static_executable")
    variables = dict(service_name="sock-http", service_artifact=str(program),
                     service_port=PORT, service_args=["--bind", "127.0.0.1", "--port", str(PORT)],
                     service_probe={"kind": "http", "port": PORT, "path": "/health"},
                     service_environment={"RELEASE": str(release)}, service_socket_activation=activation)
    result = run_playbook(PLAYBOOK, container.name, variables)
    assert result.rc == 0, result.failures or result.output[-3000:]
    return result


def polled_through(container, releases, activation: bool) -> dict:
    container.exec_run(["rm", "-f", "/tmp/poll.stop", "/tmp/poll.json"])
    container.exec_run(["python3", "-c", POLLER], detach=True)
    time.sleep(1)
    for release in releases:
        deploy(container, release, activation)
    container.exec_run(["touch", "/tmp/poll.stop"])
    for _attempt in range(100):
        found = container.exec_run(["cat", "/tmp/poll.json"])
        if found.exit_code == 0:
            return json.loads(found.output)
        time.sleep(0.1)
    raise AssertionError("the poller did not report")


def test_a_rolling_deploy_with_socket_activation_refuses_no_request(host):
    deploy(host, 1, activation=True)
    assert host.exec_run(["systemctl", "is-active", "sock-http.socket"]).output.decode().strip() == "active"
    assert "listening on the socket systemd passed" in host.exec_run(
        ["journalctl", "-u", "sock-http", "--no-pager", "-o", "cat"]).output.decode()
    with_socket = polled_through(host, [2, 3], activation=True)
    print(f"\nwith socket activation: {with_socket}")
    assert with_socket["ok"] > 50, with_socket
    assert with_socket["failed"] == 0, with_socket

    # Switching it off stops the socket, and the program binds the port itself again.
    without = polled_through(host, [4, 5], activation=False)
    print(f"without socket activation: {without}")
    assert host.exec_run(["systemctl", "is-active", "sock-http.socket"]).output.decode().strip() != "active"
    assert not host.exec_run(["test", "-e", "/etc/systemd/system/sock-http.socket"]).exit_code == 0
    assert without["ok"] > 50, without


def test_socket_activation_without_a_port_is_refused(host):
    program = swift_build_fixture("http-service", "static_executable")
    variables = dict(service_name="sock-bad", service_artifact=str(program), service_socket_activation=True)
    result = run_playbook(PLAYBOOK, host.name, variables)
    assert result.rc != 0
    assert any("service_socket_activation needs service_port" in failure for failure in result.failures)
