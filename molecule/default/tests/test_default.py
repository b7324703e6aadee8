"""The default (smoke) scenario: each test host booted systemd as PID 1 and the trivial role recorded its facts."""
import json

GLIBC_BY_SUITE = {"trixie": "2.41", "bookworm": "2.36", "bullseye": "2.31"}
# libstdc++ of GCC 14, 12 and 10, read from the host's own library by pyelftools on the controller.
GLIBCXX_BY_SUITE = {"trixie": "3.4.33", "bookworm": "3.4.30", "bullseye": "3.4.28"}


def test_systemd_is_pid_1_and_running(host):
    # minbase has no ps; /proc tells the same.
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), host.run("systemctl --failed --no-pager").stdout


def test_local_facts_match_the_suite(host):
    facts_file = host.file("/etc/ansible/facts.d/swiftlinux.fact")
    assert facts_file.exists and facts_file.mode == 0o644
    facts = json.loads(facts_file.content_string)
    suite = host.backend.get_hostname()
    assert facts["glibc_version"] == GLIBC_BY_SUITE[suite]
    assert facts["glibcxx_version"] == GLIBCXX_BY_SUITE[suite]
    assert "libraries" not in facts
    assert facts["architecture"] == host.system_info.arch
    assert facts["systemd_version"] >= 247
