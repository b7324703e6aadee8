"""What the service role installed for a static_stdlib build that uses FoundationNetworking and FoundationXML."""

PORTS = {"trixie": 18231, "bookworm": 18232, "bullseye": 18233}
# trixie renamed libcurl4 for the 64-bit time_t transition; apt picked the provider.
CURL = {"trixie": "libcurl4t64", "bookworm": "libcurl4", "bullseye": "libcurl4"}


def name(host):
    return host.backend.get_hostname()


def http_get(host, path):
    script = (f"import urllib.request; r = urllib.request.urlopen('http://127.0.0.1:{PORTS[name(host)]}{path}', "
              "timeout=5); print(r.status, r.read().decode())")
    return host.run(f'python3 -c "{script}"')


def test_packages_were_installed_where_the_service_runs(host):
    packages = [CURL[name(host)], "libxml2"]
    for package in packages:
        installed = host.package(package).is_installed
        assert installed == (name(host) != "bullseye"), package


def test_refused_host_has_no_service(host):
    if name(host) != "bullseye":
        return
    assert not host.file("/opt/networking").exists
    assert not host.file("/etc/systemd/system/networking.service").exists


def test_service_serves_xml_through_libxml2(host):
    if name(host) == "bullseye":
        return
    assert host.service("networking").is_running
    answer = http_get(host, "/xml")
    assert answer.rc == 0 and answer.stdout.startswith("200 "), answer.stderr
    health = http_get(host, "/health")
    assert health.stdout.strip() == '200 {"status":"ok"}'


def test_url_session_client_runs_through_libcurl(host):
    if name(host) == "bullseye":
        return
    fetched = host.run(f"/opt/networking/current/networking-service --fetch http://127.0.0.1:{PORTS[name(host)]}/health")
    assert fetched.rc == 0, fetched.stderr
    assert '{"status":"ok"}' in fetched.stdout


def test_libraries_resolve_to_the_installed_packages(host):
    if name(host) == "bullseye":
        return
    ldd = host.run("ldd /opt/networking/current/networking-service")
    assert ldd.rc == 0 and "not found" not in ldd.stdout, ldd.stdout
    assert "libcurl.so.4 => /" in ldd.stdout and "libxml2.so.2 => /" in ldd.stdout
