"""The example role on a systemd test host from the swiftlinux.deploy kit."""
import json


def test_systemd_is_pid_1_and_up(host):
    assert host.run("cat /proc/1/comm").stdout.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), host.run("systemctl --failed --no-legend").stdout


def test_the_unit_published_the_report(host):
    unit = host.service("kit-example.service")
    assert unit.is_enabled
    assert unit.is_running, host.run("journalctl -u kit-example.service --no-pager -n 20").stdout
    published = json.loads(host.file("/run/kit-example/host.json").content_string)
    assert published == json.loads(host.file("/etc/kit-example/host.json").content_string)
    # the glibc host_info read is the one the host really runs
    assert host.run("getconf GNU_LIBC_VERSION").stdout.split()[-1] == published["glibc"]
    assert host.run("systemctl --version").stdout.split()[1] == str(published["systemd"])
