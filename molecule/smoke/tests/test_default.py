"""The smoke scenario: each test host booted systemd as PID 1 and the trivial role recorded its facts."""
import json

GLIBC_BY_SUITE = {"trixie": "2.41", "bookworm": "2.36", "bullseye": "2.31"}


def test_systemd_is_pid_1_and_running(host):
    # minbase has no ps; /proc tells the same.
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), host.run("systemctl --failed --no-pager").stdout


def test_local_facts_match_the_suite(host):
    facts_file = host.file("/etc/ansible/facts.d/swiftlinux.fact")
    assert facts_file.exists and facts_file.mode == 0o644
    facts = json.loads(facts_file.content_string)
    assert facts["glibc_version"] == GLIBC_BY_SUITE[host.backend.get_hostname()]
    assert facts["architecture"] == host.system_info.arch
    assert facts["systemd_version"] >= 247
