"""The container role's result on each host: a hardened container of that host's link mode that answers."""
import json

MODES = {"trixie": "static_executable", "bookworm": "dynamic", "bullseye": "static_stdlib"}
RECIPES = {"static_executable": "scratch-static", "dynamic": "scratch-bag", "static_stdlib": "scratch-bag"}
PORTS = {"trixie": 18241, "bookworm": 18242, "bullseye": 18243}


def name(host):
    return host.backend.get_hostname()


def inspect(host):
    info = host.ansible("community.docker.docker_container_info", f"name=http-{name(host)}", check=False)
    assert info["exists"], info
    return info["container"]


def test_container_runs_the_image_of_this_hosts_link_mode(host):
    container = inspect(host)
    assert container["State"]["Running"]
    assert container["Config"]["Image"] == f"swiftlinux-molecule/http-service:{MODES[name(host)].replace('_', '-')}"
    labels = container["Config"]["Labels"]
    assert labels["io.swiftlinux.link-mode"] == MODES[name(host)]
    assert labels["io.swiftlinux.recipe"] == RECIPES[MODES[name(host)]]


def test_container_is_hardened(host):
    config, hostconfig = inspect(host)["Config"], inspect(host)["HostConfig"]
    assert config["User"] == "65532:65532"
    assert hostconfig["ReadonlyRootfs"] is True
    assert hostconfig["CapDrop"] == ["ALL"] and not hostconfig["CapAdd"]
    assert hostconfig["SecurityOpt"] == ["no-new-privileges"]
    assert hostconfig["Privileged"] is False
    assert hostconfig["Tmpfs"]["/tmp"].startswith("rw,noexec,nosuid,nodev")
    assert hostconfig["RestartPolicy"]["Name"] == "unless-stopped"


def test_docker_health_check_is_the_converges_opt_in(host):
    container = inspect(host)
    run = json.loads(container["Config"]["Labels"]["io.swiftlinux.deploy.run"])
    if MODES[name(host)] == "static_executable":
        url = f"http://127.0.0.1:{PORTS[name(host)]}/health"
        assert run["healthcheck"] == ["/app/http-service", "--check", url]
        assert container["Config"]["Healthcheck"]["Test"] == ["CMD", "/app/http-service", "--check", url]
        assert container["State"]["Health"]["Status"] in ("healthy", "starting")
    else:  # not asked for: the role adds none
        assert run["healthcheck"] == []


def test_container_records_the_run_settings_it_was_started_with(host):
    container = inspect(host)
    run = json.loads(container["Config"]["Labels"]["io.swiftlinux.deploy.run"])
    assert run["command"] == container["Config"]["Cmd"] == ["--bind", "127.0.0.1", "--port", str(PORTS[name(host)])]
    assert run["probe"]["kind"] == "http" and run["probe"]["port"] == PORTS[name(host)]
    assert run["network_mode"] == container["HostConfig"]["NetworkMode"] == "host"


def test_service_answers_on_this_hosts_port(host):
    script = (f"import urllib.request; r = urllib.request.urlopen('http://127.0.0.1:{PORTS[name(host)]}/health', "
              "timeout=5); print(r.status, r.read().decode())")
    answer = host.run(f'python3 -c "{script}"')
    assert answer.rc == 0 and answer.stdout.strip() == '200 {"status":"ok"}', answer.stderr


def test_role_installed_the_requests_library_and_removed_the_delivered_archive(host):
    assert host.package("python3-requests").is_installed
    assert not host.file(f"/var/lib/swiftlinux/images/http-{name(host)}.tar").exists
    assert host.file("/var/lib/swiftlinux/images").mode == 0o700


def test_image_arrived_as_an_archive_with_its_digest(host):
    images = host.ansible("community.docker.docker_image_info",
                          f"name=swiftlinux-molecule/http-service:{MODES[name(host)].replace('_', '-')}",
                          check=False)["images"]
    assert len(images) == 1 and images[0]["Id"] == inspect(host)["Image"]
    assert json.dumps(images[0]["Config"]["Entrypoint"]).startswith('["/app')
