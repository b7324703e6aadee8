"""swiftlinux.deploy.host_info: what a host offers, read in one call on the host, against real hosts.

The GLIBCXX answer is read from libstdc++'s bytes on the host; here it is compared with pyelftools' reading of
this machine's file (tests/unit/plugins/module_utils/test_host.py does so for every test-host suite).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile

import pytest
from support import REPO, run_module, run_playbook, swift_build_fixture

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "host_info.yml"


def assert_one_clear_error(result: dict, *needles: str) -> None:
    assert result.get("failed") is True, result
    assert result.get("changed") is False
    assert "Traceback" not in json.dumps(result)
    for needle in needles:
        assert needle in result["msg"], result["msg"]


def test_this_machine_matches_what_other_tools_say():
    result = run_module("host_info", {})
    assert not result.get("failed"), result
    assert result["changed"] is False
    host = result["host"]
    assert host["architecture"] == os.uname().machine
    assert host["glibc_version"] == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    assert host["libraries"]["libc.so.6"].endswith("/libc.so.6")
    assert host["libstdcxx_path"] == os.path.realpath(host["libraries"]["libstdc++.so.6"])
    elf = run_module("elf_info", {"path": host["libstdcxx_path"]})["elf"]
    assert host["glibcxx_version"] == elf["glibcxx_provided"]
    assert (host["port_in_use"], host["unit_state"], host["unit_file_state"], host["user"]) == (None, None, None, None)
    assert host["paths"] == {}
    assert host["shell"] is True


def test_check_mode_reads_the_same():
    normal = run_module("host_info", {})["host"]
    checked = run_module("host_info", {}, check_mode=True)
    assert checked["changed"] is False
    assert checked["host"] == normal


def test_port_in_use_and_free():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        taken = listener.getsockname()[1]
        assert run_module("host_info", {"port": taken})["host"]["port_in_use"] is True
    with socket.socket() as probe:  # bound, never listening: nothing accepts there
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
        assert run_module("host_info", {"port": free})["host"]["port_in_use"] is False


def test_a_user_is_described_and_a_missing_one_is_null():
    assert run_module("host_info", {"user": "root"})["host"]["user"]["uid"] == 0
    assert run_module("host_info", {"user": "swiftlinux-no-such-user"})["host"]["user"] is None


def test_paths_are_described_without_following_links(tmp_path):
    (tmp_path / "releases" / "r1").mkdir(parents=True)
    (tmp_path / "current").symlink_to("releases/r1")
    asked = [str(tmp_path / "releases"), str(tmp_path / "current"), str(tmp_path / "none")]
    paths = run_module("host_info", {"paths": asked})["host"]["paths"]
    assert paths == {asked[0]: {"type": "directory", "entries": ["r1"], "truncated": False},
                     asked[1]: {"type": "link", "target": "releases/r1"}, asked[2]: None}


def test_checksums_of_regular_files_only(tmp_path):
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "app").write_bytes(b"the program")
    (tmp_path / "current").symlink_to("release")
    (tmp_path / "link").symlink_to("release/app")
    os.mkfifo(tmp_path / "fifo")
    asked = [str(tmp_path / name) for name in ("current/app", "link", "release", "fifo", "none")]
    checksums = run_module("host_info", {"checksums": asked})["host"]["checksums"]
    assert checksums == {asked[0]: hashlib.sha256(b"the program").hexdigest(),  # a link on the way is followed
                         asked[1]: None, asked[2]: None, asked[3]: None, asked[4]: None}


def test_the_probe_is_tried_once_unless_its_unit_is_down():
    """Here systemd is not running, so no unit is active: with a unit the probe is not tried; without one it is
    tried once, with no retries (nothing listens on port 1). The service and container roles' tests show it tried on
    real hosts, passing and failing."""
    host = run_module("host_info", {"unit": "swiftlinux-no-such.service", "probe": {"kind": "tcp", "port": 1}})["host"]
    assert host["unit_state"] != "active" and host["probe"] is None
    tried = run_module("host_info", {"probe": {"kind": "tcp", "port": 1, "retries": 5}})["host"]["probe"]
    assert tried["ok"] is False and "attempt" in tried["summary"] and "failed 1 attempt(s)" in tried["summary"], tried
    waited = run_module("host_info", {"probe": {"kind": "none", "seconds": 30}})["host"]["probe"]
    assert waited is None  # kind none's check is the unit staying up over time: nothing to try at once
    checked = run_module("host_info", {"probe": {"kind": "tcp", "port": 1}}, check_mode=True)["host"]["probe"]
    assert checked is None


@pytest.mark.parametrize(("args", "needles"), [
    ({"port": 0}, ["port 0 is out of range", "1 to 65535"]),
    ({"port": 70000}, ["port 70000 is out of range"]),
    ({"wait_timeout": 0}, ["wait_timeout must be at least 1"]),
    ({"port": 8080, "port_host": "no such host.invalid"}, ["could not check port 8080", "port_host"]),
    ({"port": "eighty"}, ["port"]),
    ({"paths": ["releases"]}, ["paths must be absolute; releases is not"]),
    ({"checksums": ["current/app"]}, ["checksums must be absolute; current/app is not"]),
    ({"probe": {"kind": "http", "path": "/health"}}, ["a http probe needs a port"]),
    ({"probe": {"kind": "udp", "port": 53}}, ["kind"]),
], ids=["port-zero", "port-range", "wait-timeout", "port-host", "port-not-int", "relative-path", "relative-checksum",
        "probe-without-port", "probe-kind"])
def test_bad_inputs_give_one_clear_error(args, needles):
    assert_one_clear_error(run_module("host_info", args), *needles)


# ---- over the docker connection: a booted systemd host, and one where systemd is not PID 1 ----------------------

@pytest.fixture(scope="module")
def unbooted_host(docker_client):
    """A test host whose PID 1 is sleep, not systemd: systemctl is there, but no systemd answers it."""
    container = docker_client.containers.run("swiftlinux-testhost:bookworm", command=["sleep", "infinity"],
                                             name="swiftlinux-test-host-info-unbooted", network_mode="none",
                                             labels={"swiftlinux.test": "pytest"}, detach=True, remove=False)
    yield container
    container.remove(force=True)


def test_waiting_for_systemd_where_it_is_not_pid1_fails_clearly(unbooted_host):
    result = run_playbook(PLAYBOOK, unbooted_host.name, {"wait": True, "timeout": 5})
    assert result.rc != 0
    assert len(result.failures) == 1, result.failures
    assert "did not finish booting within 5 s" in result.failures[0]
    assert "wait_timeout" in result.failures[0]
    assert "Traceback" not in result.output


def test_without_waiting_the_unbooted_host_is_still_described(unbooted_host):
    result = run_playbook(PLAYBOOK, unbooted_host.name, {"wait": False, "timeout": 5})
    assert result.rc == 0, result.output
    assert result.changed == 0
    host = result.results["Describe the host"]["host"]
    assert host["glibc_version"] == "2.36"
    assert host["glibcxx_version"] == "3.4.30"
    assert host["architecture"] == os.uname().machine
    assert host["systemd_version"] >= 252
    assert host["systemd_state"] == "offline"


def test_probe_gating_a_unit_where_systemd_does_not_answer_fails_clearly(unbooted_host):
    result = run_playbook(PLAYBOOK, unbooted_host.name, {"wait": False, "timeout": 5, "probe_unit": "no-such-unit"})
    assert result.rc != 0
    assert len(result.failures) == 1, result.failures
    assert "Could not ask systemd about unit no-such-unit" in result.failures[0]
    assert "check that systemd runs on the host" in result.failures[0]
    assert "Traceback" not in result.output


def test_artifact_info_over_another_connection_describes_the_artifact_on_the_host(unbooted_host):
    """Its action plugin runs in the controller's process only on the local connection: here the path exists on the
    host alone, so only the module running there can describe it, and it gives the controller's answer."""
    local = swift_build_fixture("hello", "static_executable")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(local, arcname="swiftlinux-hello")
    unbooted_host.put_archive("/opt", archive.getvalue())
    result = run_playbook(PLAYBOOK, unbooted_host.name, {"wait": False, "timeout": 5,
                                                         "artifact": "/opt/swiftlinux-hello"})
    assert result.rc == 0, result.output
    described = result.results["Describe an artifact on the host"]
    expected = run_module("artifact_info", {"path": str(local)}, through_ansible=True)
    assert not os.path.exists("/opt/swiftlinux-hello")
    assert (described["release_id"], described["files"]) == (expected["release_id"], expected["files"])
