"""The service role against a real systemd host: faults, rollback, check mode and bad inputs.

The happy paths on all three suites are in molecule/service; these are the cases that need a
playbook to fail, be killed, or run out of disk, and then show that the old release still serves.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support import (BUILD_CACHE, REPO, built_fixture, run_playbook, start_systemd_host, swift_build_fixture,
                     tool_env)

pytestmark = pytest.mark.slow

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "service.yml"


@pytest.fixture(scope="module")
def host():
    container = start_systemd_host("swiftlinux-test-service")
    yield container
    container.remove(force=True)


def artifact(fixture: str) -> str:
    return str(swift_build_fixture(fixture, "static_executable"))


def deploy(container, name: str, fixture: str, port: int, check: bool = False, **extra):
    extra.setdefault("service_artifact", artifact(fixture))
    return run_playbook(PLAYBOOK, container.name, dict(service_name=name, service_port=port,
                                                       service_health_retries=8, **extra), check=check)


def health(container, port: int) -> str:
    probe = (f"import urllib.request; r = urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=5); "
             "print(r.status, r.read().decode())")
    result = container.exec_run(["python3", "-c", probe])
    return result.output.decode().strip() if result.exit_code == 0 else f"down ({result.output.decode()[-200:]})"


def current(container, name: str) -> str:
    out = container.exec_run(["readlink", f"/opt/{name}/current"]).output.decode().strip()
    return os.path.basename(out)


def release_id(fixture: str) -> str:
    """The id the role will give this artifact (artifact_info derives it from the checksums)."""
    from support import run_module
    return run_module("artifact_info", {"path": artifact(fixture)})["release_id"]


def entries(container, path: str) -> list[str]:
    out = container.exec_run(["ls", "-A", path])
    return out.output.decode().split() if out.exit_code == 0 else []


def test_failed_health_check_rolls_back_and_the_old_release_serves(host):
    result = deploy(host, "roll", "http-service", 8101)
    assert result.rc == 0, result.output
    good = current(host, "roll")
    assert good == release_id("http-service") and health(host, 8101) == '200 {"status":"ok"}'

    # hello prints a line and exits: a release that never answers /health.
    result = deploy(host, "roll", "hello", 8101)
    assert result.rc != 0
    assert any("failed its health check" in f and f"Rolled back to release {good}" in f
               for f in result.failures), result.failures
    assert current(host, "roll") == good
    assert health(host, 8101) == '200 {"status":"ok"}'
    # The failed release stays on disk for inspection but is not current.
    assert release_id("hello") in entries(host, "/opt/roll/releases")


def test_play_killed_while_uploading_leaves_the_old_release_and_the_next_run_completes(host):
    result = deploy(host, "kill", "http-service", 8102)
    assert result.rc == 0, result.output
    old = current(host, "kill")

    env = tool_env()
    inventory = BUILD_CACHE / f"inventory-{host.name}.yml"
    cmd = ["ansible-playbook", "-i", str(inventory), str(PLAYBOOK), "-e",
           f'{{"service_name": "kill", "service_port": 8102, "service_artifact": "{artifact("foundation-service")}"}}']
    play = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not any(e.startswith(".staging-") for e in entries(host, "/opt/kill/releases")):
            assert play.poll() is None, "the play finished before the upload could be interrupted"
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.05)
        assert play.poll() is None
        os.killpg(play.pid, signal.SIGKILL)
    finally:
        play.wait()

    assert current(host, "kill") == old and health(host, 8102) == '200 {"status":"ok"}'
    result = deploy(host, "kill", "foundation-service", 8102)
    assert result.rc == 0, result.output
    assert current(host, "kill") == release_id("foundation-service")
    assert health(host, 8102) == '200 {"status":"ok"}'
    assert not [e for e in entries(host, "/opt/kill/releases") if e.startswith(".staging-")]


def test_full_disk_gives_one_clear_error_and_keeps_the_old_release():
    # /opt is a 40 MiB tmpfs: http-service (~17 MiB with its backtracer) fits, foundation-service (~65 MiB) does not.
    container = start_systemd_host("swiftlinux-test-fulldisk", tmpfs={"/opt": "rw,exec,size=40m"})
    try:
        result = deploy(container, "full", "http-service", 8103)
        assert result.rc == 0, result.output
        old = current(container, "full")
        result = deploy(container, "full", "foundation-service", 8103)
        assert result.rc != 0
        assert any("the file system is full" in f and "current is untouched" in f
                   for f in result.failures), result.failures
        assert current(container, "full") == old and health(container, 8103) == '200 {"status":"ok"}'
        assert entries(container, "/opt/full/releases") == [old]
    finally:
        container.remove(force=True)


def test_check_mode_reports_changes_and_changes_nothing(host):
    result = deploy(host, "dry", "http-service", 8104, check=True)
    assert result.rc == 0, result.output
    assert result.changed > 0
    assert entries(host, "/opt/dry") == []
    assert host.exec_run(["test", "-e", "/etc/systemd/system/dry.service"]).exit_code != 0


def test_second_run_changes_nothing(host):
    first = deploy(host, "again", "http-service", 8105)
    assert first.rc == 0 and first.changed > 0, first.output
    second = deploy(host, "again", "http-service", 8105)
    assert second.rc == 0 and second.changed == 0, second.output[-3000:]


# ---- bad inputs: one clear error each, nothing changed on the host ---------------------------

def _refused(container, name, result, *needles):
    assert result.rc != 0 and result.failures, "the play should have failed"
    assert any(all(n in f for n in needles) for f in result.failures), result.failures
    assert "Traceback" not in result.output
    assert entries(container, f"/opt/{name}") == []


def test_missing_artifact(host, tmp_path):
    result = deploy(host, "nothing", "http-service", 8106, service_artifact=str(tmp_path / "gone"))
    _refused(host, "nothing", result, "does not exist", "swift_build")


def test_tampered_artifact_is_refused_by_checksum(host, tmp_path):
    tampered = tmp_path / "artifact"
    shutil.copytree(artifact("http-service"), tampered, symlinks=True)
    with open(tampered / "http-service", "r+b") as exe:
        exe.seek(-16, os.SEEK_END)
        exe.write(b"\0" * 16)
    result = deploy(host, "tampered", "http-service", 8107, service_artifact=str(tampered))
    _refused(host, "tampered", result, "checksum mismatch", "http-service")


@pytest.mark.parametrize("name", ["../etc", "a/b", "UPPER", "x..y"])
def test_service_name_with_path_characters(host, name):
    before = entries(host, "/opt")
    result = deploy(host, name, "http-service", 8108)
    assert result.rc != 0
    assert any("is not usable as a unit, user and directory name" in f for f in result.failures), result.failures
    assert entries(host, "/opt") == before


def test_port_already_in_use(host):
    result = deploy(host, "owner", "http-service", 8109)
    assert result.rc == 0, result.output
    result = deploy(host, "intruder", "http-service", 8109)
    _refused(host, "intruder", result, "Port 8109", "already in use", "service_port")
    assert health(host, 8109) == '200 {"status":"ok"}'


def test_unknown_mode(host):
    result = deploy(host, "modes", "http-service", 8110, service_link_mode="semi_static")
    _refused(host, "modes", result, "service_link_mode", "static_executable")


def test_mode_mismatch(host):
    result = deploy(host, "mismatch", "http-service", 8111, service_link_mode="static_stdlib")
    _refused(host, "mismatch", result, "was built with link_mode static_executable, not static_stdlib")


def test_dynamic_build_without_bag_is_refused(host):
    dynamic = str(Path(built_fixture("http-service", "dynamic")["manifest"]).parent)
    result = deploy(host, "dyn", "http-service", 8112, service_artifact=dynamic)
    _refused(host, "dyn", result, "dynamic build", "shared_objects")
