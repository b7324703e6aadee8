"""The service role against a real systemd host: faults, rollback, check mode and bad inputs.

The happy paths on all three suites are in molecule/service; these are the cases that need a
playbook to fail, be killed, or run out of disk, and then show that the old release still serves.
"""
from __future__ import annotations

import json
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
    container = start_systemd_host("swiftlinux-test-probes-service")
    yield container
    container.remove(force=True)


def artifact(fixture: str) -> str:
    return str(swift_build_fixture(fixture, "static_executable"))


def http_service_vars(port: int) -> dict:
    """The http-service fixture's own flags and health path, passed explicitly: the role assumes neither."""
    return dict(service_port=port, service_args=["--bind", "127.0.0.1", "--port", str(port)],
                service_probe=dict(kind="http", port=port, path="/health", retries=6, delay=1))


def deploy(container, name: str, fixture: str, port: int, check: bool = False, **extra):
    extra.setdefault("service_artifact", artifact(fixture))
    return run_playbook(PLAYBOOK, container.name, {"service_name": name, **http_service_vars(port), **extra},
                        check=check)


def unit(container, name: str, *properties: str) -> dict:
    out = container.exec_run(["systemctl", "show", f"--property={','.join(properties)}", name]).output.decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cmdline(container, name: str) -> list[str]:
    pid = unit(container, name, "MainPID")["MainPID"]
    raw = container.exec_run(["cat", f"/proc/{pid}/cmdline"]).output
    return raw.decode().split("\0")[1:-1]


def health(container, port: int) -> str:
    probe = (f"import urllib.request; r = urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=5); "
             "print(r.status, r.read().decode())")
    result = container.exec_run(["python3", "-c", probe])
    return result.output.decode().strip() if result.exit_code == 0 else f"down ({result.output.decode()[-200:]})"


def current(container, name: str) -> str:
    out = container.exec_run(["readlink", f"/opt/{name}/current"]).output.decode().strip()
    return os.path.basename(out)


def entries(container, path: str) -> list[str]:
    out = container.exec_run(["ls", "-A", path])
    return out.output.decode().split() if out.exit_code == 0 else []


def test_failing_first_release_is_stopped_with_the_probe_answer_and_the_journal(host):
    # The program refuses the port and exits 2; Restart=on-failure would restart it for ever.
    result = deploy(host, "first", "http-service", 8120, service_args=["--bind", "127.0.0.1", "--port", "70000"])
    assert result.rc != 0
    message = result.failures[-1]
    assert "of first on swiftlinux-test-probes-service failed its probe" in message, result.failures
    assert "GET http://127.0.0.1:8120/health expecting 200 failed after 7 attempt(s)" in message
    assert "ConnectionRefusedError: Connection refused" in message
    assert "It was the first release, so the unit is stopped and disabled" in message
    assert "Last journal lines:" in message and "invalid port '70000'" in message
    assert "Traceback" not in result.output and "Conditionals must have a boolean result" not in result.output
    state = unit(host, "first", "ActiveState", "NRestarts")
    assert state["ActiveState"] in ("inactive", "failed"), state
    # Disabled: systemctl disable also removes the unit's link, so a reboot does not start the broken release.
    assert host.exec_run(["systemctl", "is-enabled", "first"]).output.decode().strip() != "enabled"
    time.sleep(3)  # longer than RestartSec: a unit left restarting would have started again
    assert unit(host, "first", "ActiveState", "NRestarts") == {"ActiveState": state["ActiveState"],
                                                               "NRestarts": state["NRestarts"]}


def test_failing_binary_change_rolls_back_and_the_old_release_serves(host):
    result = deploy(host, "roll", "http-service", 8101)
    assert result.rc == 0, result.output
    good = current(host, "roll")
    assert health(host, 8101) == '200 {"status":"ok"}'

    # hello prints a line and exits: a release that never answers /health.
    result = deploy(host, "roll", "hello", 8101)
    assert result.rc != 0
    assert any("failed its probe" in f and f"Rolled back to release {good}" in f and "passes its probe again" in f
               for f in result.failures), result.failures
    assert current(host, "roll") == good
    assert health(host, 8101) == '200 {"status":"ok"}'
    # The failed release stays on disk for inspection but is not current.
    assert len(entries(host, "/opt/roll/releases")) == 2


def test_failing_config_only_change_rolls_back_to_the_old_arguments(host):
    old_args = ["--bind", "127.0.0.1", "--port", "8113"]
    result = deploy(host, "conf", "http-service", 8113, service_environment={"GREETING": "old"})
    assert result.rc == 0, result.output
    good = current(host, "conf")
    assert cmdline(host, "conf") == old_args

    # Same binary; new arguments on a new port with a probe there, and one argument the program refuses.
    new = http_service_vars(8114)
    new["service_args"].append("--verbose")
    result = deploy(host, "conf", "http-service", 8113, service_args=new["service_args"],
                    service_probe=new["service_probe"], service_environment={"GREETING": "new"})
    assert result.rc != 0
    message = result.failures[-1]
    assert "GET http://127.0.0.1:8114/health" in message and f"Rolled back to release {good}" in message
    # The previous release is probed with the probe it was deployed with (port 8113), and passes.
    assert "it passes its probe again" in message and "unknown argument '--verbose'" in message, message
    assert current(host, "conf") == good and health(host, 8113) == '200 {"status":"ok"}'
    assert cmdline(host, "conf") == old_args
    assert "8113" in unit(host, "conf", "ExecStart")["ExecStart"]
    env = host.exec_run(["cat", "/etc/systemd/system/conf.service", "/opt/conf/current/.swiftlinux/environment"])
    assert 'GREETING="old"' in env.output.decode() and "--verbose" not in env.output.decode()


def test_worker_that_listens_on_nothing(host):
    # A worker is gated by kind none: it must stay up, and systemd must not restart it meanwhile.
    worker = dict(service_port=None, service_args=["--bind", "127.0.0.1", "--port", "8115"],
                  service_probe={"kind": "none", "seconds": 3})
    result = deploy(host, "worker", "http-service", 8115, **worker)
    assert result.rc == 0, result.output
    assert unit(host, "worker", "ActiveState")["ActiveState"] == "active"

    # hello exits at once (status 0, so systemd does not even restart it): the none gate fails cleanly.
    result = deploy(host, "quitter", "hello", 8116, **{**worker, "service_args": []})
    assert result.rc != 0
    message = result.failures[-1]
    assert "failed its probe: the unit is inactive (dead)" in message, result.failures
    assert "staying up for 3 s" in message and "It was the first release" in message
    assert "Hello" in message or "hello" in message  # hello's output, from the journal


def test_programs_that_are_not_ours_deploy_with_generic_probes_only(host):
    # dep-server: a package dependency, a C target, positional <host> <port> and its own /healthz.
    result = deploy(host, "depserver", "dep-server", 8117, service_port=8117, service_args=["127.0.0.1", "8117"],
                    service_probe={"kind": "http", "port": 8117, "path": "/healthz", "retries": 10})
    assert result.rc == 0, result.failures or result.output[-3000:]
    assert cmdline(host, "depserver") == ["127.0.0.1", "8117"]
    probe = ("import urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8117/healthz', timeout=5); "
             "print(r.status)")
    assert host.exec_run(["python3", "-c", probe]).output.decode().strip() == "200"
    # worker: listens on nothing; gated by staying up without restarts, and it really beats.
    worker = dict(service_executable="worker", service_port=None, service_args=[],
                  service_probe={"kind": "none", "seconds": 3})
    result = deploy(host, "beats", "worker", 8118, **worker)
    assert result.rc == 0, result.failures or result.output[-3000:]
    journal = host.exec_run(["journalctl", "-u", "beats", "--no-pager", "-o", "cat"]).output.decode()
    assert "heartbeat 1 " in journal, journal[-2000:]
    again = deploy(host, "beats", "worker", 8118, **worker)
    assert again.rc == 0 and again.changed == 0, again.output[-3000:]


def uploading(host) -> bool:
    found = host.exec_run(["sh", "-c", "ls -d /root/.ansible/tmp/*/release.tar /opt/kill/releases/.staging-* "
                                       "2>/dev/null"]).output.decode()
    return bool(found.strip())


def test_play_killed_while_uploading_leaves_the_old_release_and_the_next_run_completes(host):
    result = deploy(host, "kill", "http-service", 8102)
    assert result.rc == 0, result.output
    old = current(host, "kill")

    env = tool_env()
    inventory = BUILD_CACHE / f"inventory-{host.name}.yml"
    extra = {"service_name": "kill", **http_service_vars(8102), "service_artifact": artifact("foundation-service")}
    cmd = ["ansible-playbook", "-i", str(inventory), str(PLAYBOOK), "-e", json.dumps(extra)]
    play = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        # The release travels as one tar into Ansible's temporary directory on the host, then is extracted into
        # releases/.staging-<id>: kill the play as soon as either has begun.
        while not uploading(host):
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
    assert current(host, "kill") != old
    assert health(host, 8102) == '200 {"status":"ok"}'
    assert not [e for e in entries(host, "/opt/kill/releases") if e.startswith(".staging-")]


def test_full_disk_gives_one_clear_error_and_keeps_the_old_release():
    # /opt is a 40 MiB tmpfs: http-service (~17 MiB with its backtracer) fits, foundation-service (~65 MiB) does not.
    container = start_systemd_host("swiftlinux-test-probes-fulldisk", tmpfs={"/opt": "rw,exec,size=40m"})
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
    assert host.exec_run(["test", "-L", "/etc/systemd/system/dry.service"]).exit_code != 0


def test_second_run_changes_nothing(host):
    first = deploy(host, "again", "http-service", 8105)
    assert first.rc == 0 and first.changed > 0, first.output
    second = deploy(host, "again", "http-service", 8105)
    assert second.rc == 0 and second.changed == 0, second.output[-3000:]
    # host_info found the release current and intact, the unit linked, up and answering its probe: the tasks that
    # would change the host (tasks/change.yml, not even included) and the gate were skipped, one host call in all
    for task in ("and link and start the unit, unless all is in place",
                 "Probe the release and check that the unit stayed up"):
        answer = [r for name, r in second.results.items() if name.endswith(task)]
        assert answer and answer[0].get("skipped") is True, (task, answer)
    assert not [name for name in second.results if name.endswith("verify it and switch to it")], list(second.results)
    early = [r for name, r in second.results.items() if name.endswith("which releases it holds, in one call")]
    assert early[0]["host"]["probe"]["ok"] is True, early


def test_an_unchanged_run_still_fails_on_a_service_that_stopped_answering(host):
    """The probe host_info tries once fails, so the gate runs with its retries, fails, and says there is nothing to
    roll back to; the configuration (and so the release) is the same in both runs."""
    probe = {"kind": "command", "command": ["test", "-e", "/run/swiftlinux-test-healthy"], "retries": 1, "delay": 0.2}
    assert host.exec_run(["touch", "/run/swiftlinux-test-healthy"]).exit_code == 0
    first = deploy(host, "sick", "http-service", 8122, service_probe=probe)
    assert first.rc == 0, first.output
    release = current(host, "sick")
    assert host.exec_run(["rm", "/run/swiftlinux-test-healthy"]).exit_code == 0
    again = deploy(host, "sick", "http-service", 8122, service_probe=probe)
    assert again.rc != 0
    early = [r for name, r in again.results.items() if name.endswith("which releases it holds, in one call")]
    assert early[0]["host"]["probe"]["ok"] is False, early
    assert any(f"Release {release} of sick" in f and "failed its probe" in f
               and "already the current release, so there is nothing to roll back to" in f
               for f in again.failures), again.failures
    assert current(host, "sick") == release


def test_a_damaged_current_release_is_refused_by_the_next_run(host):
    first = deploy(host, "damaged", "http-service", 8121)
    assert first.rc == 0, first.output
    release = current(host, "damaged")
    damaged = f"/opt/damaged/releases/{release}/swift-backtrace-static"  # not running, so it can be written
    assert host.exec_run(["sh", "-c", f"printf x >> {damaged}"]).exit_code == 0
    again = deploy(host, "damaged", "http-service", 8121)
    assert again.rc != 0
    assert any(f"installed release {release} is damaged (swift-backtrace-static (checksum mismatch))" in f
               for f in again.failures), again.failures
    assert current(host, "damaged") == release and health(host, 8121) == '200 {"status":"ok"}'


# ---- bad inputs: one clear error each, nothing changed on the host ---------------------------

@pytest.mark.parametrize(("extra", "needles"), [
    ({"service_probe": {"kind": "http", "path": "/health"}}, ["a http probe needs a port"]),
    ({"service_probe": {"kind": "udp", "port": 53}}, ["kind", "http, tcp, command, none"]),
    ({"service_probe": {"kind": "tcp", "port": 70000}}, ["probe port 70000 is out of range"]),
    ({"service_probe": {"kind": "http", "port": 8117, "path": "health"}}, ["must start with '/'"]),
    ({"service_probe": {"kind": "command"}}, ["a command probe needs command"]),
    ({"service_probe": {"kind": "none", "retries": -1}}, ["probe retries must be 0 or more"]),
    ({"service_args": "--bind 127.0.0.1"}, ["service_args must be a list of strings"]),
    ({"service_args": [{"port": 1}]}, ["service_args"]),
    ({"service_port": 0}, ["service_port a port from 1 to 65535"]),
    ({"service_environment": {"BAD-NAME": "x"}}, ["service_environment", "BAD-NAME"]),
], ids=["http-without-port", "unknown-kind", "port-range", "relative-path", "command-without-argv",
        "negative-retries", "args-string", "args-mapping", "port-zero", "env-name"])
def test_bad_inputs_fail_before_touching_the_host(host, extra, needles):
    before = entries(host, "/opt")
    result = deploy(host, "badinput", "http-service", 8117, **extra)
    assert result.rc != 0 and result.failures, "the play should have failed"
    assert any(all(n in f for n in needles) for f in result.failures), result.failures
    assert "Traceback" not in result.output
    assert entries(host, "/opt") == before
    assert host.exec_run(["test", "-L", "/etc/systemd/system/badinput.service"]).exit_code != 0


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
