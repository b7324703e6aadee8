"""Bags deployed by the service role: they serve, and every non-system library resolves inside the bag."""
import pytest

SERVICES = {"bag-all": 8090, "bag-system": 8091}


def deployed(host, name):
    return not (host.backend.get_hostname() == "bullseye" and name == "bag-system")


def http_get(host, port, path="/health"):
    script = (f"import urllib.request; r = urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=5); "
              "print(r.status, r.read().decode())")
    return host.run(f'python3 -c "{script}"')


@pytest.mark.parametrize("name", SERVICES)
def test_bag_serves_or_was_never_installed(host, name):
    if not deployed(host, name):
        assert not host.file(f"/opt/{name}").exists and not host.user(name).exists
        return
    assert host.service(name).is_running, host.run(f"journalctl -u {name} -n 30 --no-pager").stdout
    answer = http_get(host, SERVICES[name])
    assert answer.rc == 0 and answer.stdout.strip() == '200 {"status":"ok"}', answer.stderr


def test_non_system_libraries_resolve_inside_the_bag(host):
    if not deployed(host, "bag-system"):
        return
    release = host.file("/opt/bag-system/current").linked_to
    ldd = host.run(f"ldd {release}/bin/http-service")
    assert ldd.rc == 0, ldd.stderr
    swift_libs = [line for line in ldd.stdout.splitlines() if "swift" in line.lower() or "dispatch" in line]
    assert swift_libs and all(f"{release}/bin/../lib/" in line for line in swift_libs), ldd.stdout
    assert "not found" not in ldd.stdout


def test_scope_all_bag_runs_on_its_own_loader(host):
    pid = host.service("bag-all").systemd_properties["MainPID"]
    maps = host.file(f"/proc/{pid}/maps").content_string
    release = host.file("/opt/bag-all/current").linked_to
    assert f"{release}/lib/libc.so.6" in maps and f"{release}/lib/ld-linux-x86-64.so.2" in maps
    environ = host.file(f"/proc/{pid}/environ").content_string
    assert "LD_LIBRARY_PATH" not in environ
