"""my_service on a systemd test host from the swiftlinux.deploy kit."""


def test_systemd_is_pid_1_and_up(host):
    assert host.run("cat /proc/1/comm").stdout.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), host.run("systemctl --failed --no-legend").stdout


def test_the_service_runs_its_current_release_as_its_own_user(host):
    unit = host.service("my-service.service")
    assert unit.is_enabled
    assert unit.is_running, host.run("journalctl -u my-service.service --no-pager -n 20").stdout
    current = host.file("/opt/my-service/current")
    assert current.is_symlink and current.linked_to.startswith("/opt/my-service/releases/")
    pid = host.run("systemctl show --property=MainPID --value my-service").stdout.strip()
    assert host.run(f"stat -c %U /proc/{pid}").stdout.strip() == "my-service"


def test_it_answers_its_health_endpoint(host):
    answer = host.run("python3 -c 'import urllib.request as u; r = u.urlopen(\"http://127.0.0.1:8080/health\");"
                      " print(r.status, r.read().decode())'")
    assert answer.rc == 0, answer.stderr
    assert answer.stdout.split()[0] == "200"


def test_the_release_keeps_the_unit_it_was_deployed_with(host):
    unit = host.file("/etc/systemd/system/my-service.service")
    assert unit.is_symlink
    text = host.file("/opt/my-service/current/.swiftlinux/my-service.service").content_string
    assert "--port 8080" in text
    probe = host.file("/opt/my-service/current/.swiftlinux/probe.yml").content_string
    assert "path: /health" in probe.splitlines()
