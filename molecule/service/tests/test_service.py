"""The service role's result on each host: hardened units that serve, and nothing where it refused."""

import pytest

SERVICES = {"hello-static": 8080, "hello-stdlib": 8081}


def deployed(host, name):
    return not (host.backend.get_hostname() == "bullseye" and name == "hello-stdlib")


def http_get(host, port, path="/health"):
    script = (f"import urllib.request; r = urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=5); "
              "print(r.status, r.read().decode())")
    return host.run(f'python3 -c "{script}"')


@pytest.mark.parametrize("name", SERVICES)
def test_service_serves_or_was_never_installed(host, name):
    if not deployed(host, name):
        assert not host.file(f"/opt/{name}").exists
        assert not host.file(f"/etc/systemd/system/{name}.service").exists
        assert not host.user(name).exists
        return
    service = host.service(name)
    assert service.is_running and service.is_enabled, host.run(f"journalctl -u {name} -n 30 --no-pager").stdout
    answer = http_get(host, SERVICES[name])
    assert answer.rc == 0 and answer.stdout.strip() == '200 {"status":"ok"}', answer.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_unit_runs_unprivileged_and_hardened(host, name):
    if not deployed(host, name):
        return
    props = host.service(name).systemd_properties
    assert props["User"] == name and props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict" and props["PrivateTmp"] == "yes"
    # An empty bounding set (no capabilities at all) is left out of systemd_properties.
    assert host.run(f"systemctl show -p CapabilityBoundingSet --value {name}").stdout.strip() == ""
    score = host.run(f"systemd-analyze security {name} --no-pager")
    exposure = float(score.stdout.strip().splitlines()[-1].split()[-3])
    assert exposure <= 1.5, score.stdout


@pytest.mark.parametrize("name", SERVICES)
def test_current_points_at_a_verified_release(host, name):
    if not deployed(host, name):
        return
    current = host.file(f"/opt/{name}/current")
    assert current.is_symlink and current.linked_to.startswith(f"/opt/{name}/releases/")
    binary = host.file(f"/opt/{name}/current/http-service")
    assert binary.mode == 0o755 and binary.user == "root"
    assert not host.file(f"/opt/{name}/releases").listdir() == []
    assert all(not entry.startswith(".staging") for entry in host.file(f"/opt/{name}/releases").listdir())


def test_preflight_only_reads_and_the_refused_host_keeps_nothing_of_the_refused_service(host):
    # host_info reads the host in one call; the service role writes no local facts (the host_facts role does).
    assert not host.file("/etc/ansible/facts.d/swiftlinux.fact").exists
    if host.backend.get_hostname() == "bullseye":
        assert not host.file("/opt/hello-stdlib").exists
        assert not host.file("/etc/systemd/system/hello-stdlib.service").exists
        assert not host.user("hello-stdlib").exists


@pytest.mark.parametrize("name", SERVICES)
def test_unit_and_environment_belong_to_the_current_release(host, name):
    if not deployed(host, name):
        return
    link = host.run(f"readlink /etc/systemd/system/{name}.service").stdout.strip()
    assert link == f"/opt/{name}/current/.swiftlinux/{name}.service"
    # The fixture's flags come from the playbook, not from the role.
    exec_start = host.run(f"systemctl show -p ExecStart --value {name}").stdout
    assert f"--port {SERVICES[name]}" in exec_start, exec_start
    assert host.file(f"/opt/{name}/current/.swiftlinux/environment").mode == 0o600
