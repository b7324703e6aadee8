"""The Swift fixture packages under tests/fixtures, built for real in each link mode and run for real.

Other tests deploy these binaries; these make sure the fixtures themselves behave as the contract says,
so a deploy failure elsewhere points at the deploy code, not at a broken fixture. Every service is
started on a free 127.0.0.1 port, probed over HTTP, and stopped with a signal.
"""
from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from support import swift_build_fixture

pytestmark = pytest.mark.slow

ALL_MODES = ["dynamic", "static_stdlib", "static_executable"]
# FoundationNetworking needs libcurl; -static-executable cannot link it (the last test pins that down).
NETWORKING_MODES = ["dynamic", "static_stdlib"]
RESOURCE_BUNDLE = "resources_resource-reader.resources"
STARTUP_TIMEOUT = 10
STOP_TIMEOUT = 5


def reap(proc: subprocess.Popen) -> None:
    """Kill a fixture process a failed assertion left running, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=STOP_TIMEOUT)
    proc.stdout.close()
    proc.stderr.close()


# --- running binaries -------------------------------------------------------------------------------

def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without proxies (libcurl would honour them) or the fixtures' own settings."""
    dropped = {"HTTP_BIND", "HTTP_PORT", "TZ_NAME", "SSL_CERT_FILE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped and "proxy" not in k.lower()}
    env.update(extra)
    return env


def run(binary: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60,
                          env=env if env is not None else clean_env(), check=False)


def free_port() -> int:
    """A port nobody listens on right now: bind to port 0 and let the kernel choose."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_get(url: str, method: str = "GET", data: bytes | None = None):
    """(status, headers, body) for a request straight to 127.0.0.1; error statuses are returned, not raised."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


class Service:
    """A fixture service on a free 127.0.0.1 port; use through `running()`, which always kills it."""

    def __init__(self, binary: Path, env: dict[str, str], via_environment: bool):
        self.port = free_port()
        if via_environment:
            args = []
            env = {**env, "HTTP_BIND": "127.0.0.1", "HTTP_PORT": str(self.port)}
        else:
            args = ["--bind", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen([str(binary), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        # A thread drains stdout into a queue, so waiting for a line can time out instead of hanging.
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output

    def next_line(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout}s") from None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self, sig: int) -> tuple[int, list[str]]:
        """Send `sig`; return the exit status and the lines printed after `listening on`."""
        self.proc.send_signal(sig)
        status = self.proc.wait(timeout=STOP_TIMEOUT)
        rest = []
        while (line := self.next_line(STOP_TIMEOUT)) is not None:
            rest.append(line)
        return status, rest


@contextlib.contextmanager
def running(binary: Path, env: dict[str, str] | None = None, via_environment: bool = False):
    """Start `binary` on a free port, given as --bind/--port or as HTTP_BIND/HTTP_PORT; kill it on exit."""
    service = Service(binary, env if env is not None else clean_env(), via_environment)
    try:
        first = service.next_line(STARTUP_TIMEOUT)
        if first is None:
            service.proc.wait(timeout=STOP_TIMEOUT)
            raise AssertionError(f"{binary.name} exited {service.proc.returncode} before listening: "
                                 f"{service.proc.stderr.read()}")
        assert first == f"listening on 127.0.0.1:{service.port}"
        yield service
    finally:
        if service.proc.poll() is None:
            service.proc.kill()
        service.proc.wait(timeout=STOP_TIMEOUT)
        service.pump.join(timeout=STOP_TIMEOUT)  # reads to EOF; closing under it would race
        service.proc.stdout.close()
        service.proc.stderr.close()


# --- what a link mode must produce ------------------------------------------------------------------

def elf_linkage(binary: Path) -> tuple[bool, list[str]]:
    """(has a program interpreter, DT_NEEDED libraries) of an ELF executable."""
    with binary.open("rb") as stream:
        elf = ELFFile(stream)
        has_interp = any(segment["p_type"] == "PT_INTERP" for segment in elf.iter_segments())
        needed = [tag.needed for section in elf.iter_sections() if isinstance(section, DynamicSection)
                  for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
    return has_interp, needed


BINARIES = [("hello", "hello"), ("http-service", "http-service"), ("foundation-service", "foundation-service"),
            ("multi-exec", "greeter"), ("multi-exec", "counter"), ("resources", "resource-reader"),
            ("dep-server", "dep-server"), ("worker", "worker"), ("worker", "name-lookup")]


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("fixture,product", BINARIES)
def test_binary_is_linked_as_its_mode_says(fixture, product, mode):
    has_interp, needed = elf_linkage(swift_build_fixture(fixture, mode) / product)
    swift_libs = [lib for lib in needed if lib.startswith(("libswift", "libFoundation"))]
    if mode == "dynamic":
        assert has_interp and "libswiftCore.so" in needed
    elif mode == "static_stdlib":
        assert has_interp and "libc.so.6" in needed and swift_libs == []
    else:
        assert not has_interp and needed == []


@pytest.mark.parametrize("mode", NETWORKING_MODES)
def test_networking_binary_is_linked_as_its_mode_says(mode):
    has_interp, needed = elf_linkage(swift_build_fixture("networking", mode) / "networking-service")
    if mode == "dynamic":  # libcurl and libxml2 come in through the toolchain's Foundation*.so
        assert has_interp and {"libswiftCore.so", "libFoundationNetworking.so", "libFoundationXML.so"} <= set(needed)
    else:  # Swift and Foundation are inside the binary; libcurl and libxml2 stay shared system libraries
        assert has_interp and {"libcurl.so.4", "libxml2.so.2"} <= set(needed)
        assert not [lib for lib in needed if lib.startswith(("libswift", "libFoundation"))]


# --- (a) hello --------------------------------------------------------------------------------------

@pytest.fixture(params=ALL_MODES)
def hello(request) -> Path:
    return swift_build_fixture("hello", request.param) / "hello"


def test_hello_greets(hello):
    result = run(hello)
    assert (result.returncode, result.stdout) == (0, "Hello, world!\n")


def test_hello_version(hello):
    result = run(hello, "--version")
    assert (result.returncode, result.stdout) == (0, "hello 1.0.0\n")


# --- (b) http-service and MiniHTTP --------------------------------------------------------------------

@pytest.fixture(params=ALL_MODES)
def http_service(request) -> Path:
    return swift_build_fixture("http-service", request.param) / "http-service"


def test_http_service_routes(http_service):
    with running(http_service) as service:
        status, headers, body = http_get(service.url("/health"))
        assert (status, headers["Content-Type"], json.loads(body)) == (200, "application/json", {"status": "ok"})
        assert headers["Connection"] == "close" and headers["Content-Length"] == str(len(body))

        status, _headers, body = http_get(service.url("/version?verbose=1"))  # the query string is ignored
        assert (status, json.loads(body)) == (200, {"name": "http-service", "version": "1.0.0"})

        assert http_get(service.url("/nope"))[0] == 404

        status, headers, _body = http_get(service.url("/health"), method="POST", data=b"x=1")
        assert (status, headers["Allow"]) == (405, "GET")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_http_service_stops_cleanly_on_signal(http_service, sig):
    with running(http_service) as service:
        assert http_get(service.url("/health"))[0] == 200
        assert service.stop(sig) == (0, ["stopping"])


def test_http_service_check_mode(http_service):
    with running(http_service) as service:
        live = run(http_service, "--check", service.url("/health"))
        assert live.returncode == 0, live.stdout + live.stderr
        assert live.stdout == f"check {service.url('/health')}: HTTP 200\n"

        not_found = run(http_service, "--check", service.url("/missing"))
        assert (not_found.returncode, "HTTP 404" in not_found.stdout) == (1, True)

    closed = run(http_service, "--check", f"http://127.0.0.1:{free_port()}/health")
    assert closed.returncode == 1 and "cannot connect" in closed.stdout


@pytest.mark.parametrize("url", ["https://127.0.0.1/health", "http://localhost:8080/health",
                                 "http://127.0.0.1:99999/", "ftp://127.0.0.1/"])
def test_http_service_check_rejects_unsupported_urls(http_service, url):
    result = run(http_service, "--check", url)
    assert result.returncode == 2 and "unsupported URL" in result.stderr


def test_http_service_version(http_service):
    assert run(http_service, "--version").stdout == "http-service 1.0.0\n"


def test_http_service_takes_bind_and_port_from_environment(http_service):
    with running(http_service, via_environment=True) as service:  # asserts the `listening on` line
        assert http_get(service.url("/health"))[0] == 200
        assert service.stop(signal.SIGTERM) == (0, ["stopping"])


def test_http_service_defaults_to_127_0_0_1_port_8080(http_service):
    # Hold 127.0.0.1:8080 ourselves: the service must then fail on exactly that default address.
    # (If another program already holds it, the service fails the same way.)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        with contextlib.suppress(OSError):
            holder.bind(("127.0.0.1", 8080))
            holder.listen()
        result = run(http_service)
    assert result.returncode == 1 and "cannot bind 127.0.0.1:8080" in result.stderr


@pytest.mark.parametrize("args,env,message", [
    (["--bind", "localhost"], {}, "invalid bind address 'localhost'"),
    (["--bind", "::1"], {}, "invalid bind address '::1'"),
    (["--port", "0"], {}, "invalid port '0'"),
    (["--port", "65536"], {}, "invalid port '65536'"),
    ([], {"HTTP_PORT": "eighty"}, "invalid port 'eighty'"),
    ([], {"HTTP_BIND": "example.org"}, "invalid bind address 'example.org'"),
    (["--verbose"], {}, "unknown argument '--verbose'"),
], ids=["hostname", "ipv6", "port-0", "port-too-big", "env-port", "env-bind", "unknown-arg"])
def test_http_service_rejects_bad_configuration(http_service, args, env, message):
    result = run(http_service, *args, env=clean_env(**env))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


# --- (c) foundation-service -------------------------------------------------------------------------

@pytest.fixture(params=ALL_MODES)
def foundation_service(request) -> Path:
    return swift_build_fixture("foundation-service", request.param) / "foundation-service"


def info(binary: Path, **env: str) -> dict:
    result = run(binary, "--info", env=clean_env(**env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_foundation_info_defaults(foundation_service):
    report = info(foundation_service)
    assert set(report) == {"now", "timezone", "utc_offset_seconds", "ca_bundle", "ca_certificates",
                           "ca_bundle_found"}
    now = datetime.fromisoformat(report["now"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - now).total_seconds()) < 60
    # TimeZone comes from the ICU data linked into Foundation, in every mode (seen with Swift 6.3.1).
    assert report["timezone"] == "Europe/Paris" and report["utc_offset_seconds"] in (3600, 7200)
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    assert report["ca_bundle"] == str(bundle) and report["ca_bundle_found"] is True
    assert report["ca_certificates"] == bundle.read_text().count("BEGIN CERTIFICATE") > 0


def test_foundation_info_time_zones(foundation_service):
    tokyo = info(foundation_service, TZ_NAME="Asia/Tokyo")  # no daylight saving: a fixed offset
    assert (tokyo["timezone"], tokyo["utc_offset_seconds"]) == ("Asia/Tokyo", 9 * 3600)
    unknown = info(foundation_service, TZ_NAME="Mars/Olympus_Mons")
    assert (unknown["timezone"], unknown["utc_offset_seconds"]) == (None, None)


def test_foundation_info_ca_bundle(foundation_service, tmp_path):
    pem = tmp_path / "bundle.pem"
    block = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    pem.write_text(block * 2)
    custom = info(foundation_service, SSL_CERT_FILE=str(pem))
    assert (custom["ca_bundle"], custom["ca_bundle_found"], custom["ca_certificates"]) == (str(pem), True, 2)

    absent = info(foundation_service, SSL_CERT_FILE=str(tmp_path / "absent.pem"))
    assert (absent["ca_bundle_found"], absent["ca_certificates"]) == (False, 0)


def test_foundation_service_routes(foundation_service):
    with running(foundation_service, env=clean_env(TZ_NAME="Asia/Tokyo")) as service:
        assert json.loads(http_get(service.url("/health"))[2]) == {"status": "ok"}
        status, headers, body = http_get(service.url("/info"))
        assert (status, headers["Content-Type"]) == (200, "application/json")
        assert json.loads(body)["timezone"] == "Asia/Tokyo"
        assert http_get(service.url("/version"))[0] == 404
        assert run(foundation_service, "--check", service.url("/info")).returncode == 0
        assert service.stop(signal.SIGTERM) == (0, ["stopping"])


def test_foundation_service_version(foundation_service):
    assert run(foundation_service, "--version").stdout == "foundation-service 1.0.0\n"


# --- (d) multi-exec ---------------------------------------------------------------------------------

@pytest.fixture(params=ALL_MODES)
def multi_exec(request) -> Path:
    return swift_build_fixture("multi-exec", request.param)


def test_greeter(multi_exec):
    result = run(multi_exec / "greeter", "Ada")
    assert (result.returncode, result.stdout) == (0, "Hello, Ada! (shared 1.0.0)\n")


def test_counter(multi_exec):
    result = run(multi_exec / "counter", "3")
    assert (result.returncode, result.stdout) == (0, "1\n2\n3\nshared 1.0.0\n")
    assert run(multi_exec / "counter", "0").stdout == "shared 1.0.0\n"


@pytest.mark.parametrize("product,args", [("greeter", []), ("greeter", ["a", "b"]), ("counter", ["three"]),
                                          ("counter", ["-1"])])
def test_multi_exec_usage_errors(multi_exec, product, args):
    result = run(multi_exec / product, *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"usage: {product} ")


# --- (e) resources ----------------------------------------------------------------------------------

@pytest.fixture(params=ALL_MODES)
def resources_bin(request) -> Path:
    return swift_build_fixture("resources", request.param)


EXPECTED_RESOURCE_OUTPUT = "Greetings from a resource bundle\nmessage: configured by config.json\n"


def test_resources_read_from_the_bin_dir(resources_bin):
    assert sorted(p.name for p in (resources_bin / RESOURCE_BUNDLE).iterdir()) == ["config.json", "greeting.txt"]
    result = run(resources_bin / "resource-reader")
    assert (result.returncode, result.stdout) == (0, EXPECTED_RESOURCE_OUTPUT)


def deploy_copy(bin_dir: Path, target: Path) -> Path:
    """Copy binary and bundle side by side, as a deploy does."""
    shutil.copy2(bin_dir / "resource-reader", target / "resource-reader")
    shutil.copytree(bin_dir / RESOURCE_BUNDLE, target / RESOURCE_BUNDLE)
    return target / "resource-reader"


def test_resources_come_from_the_bundle_next_to_the_binary(resources_bin, tmp_path):
    binary = deploy_copy(resources_bin, tmp_path)
    (tmp_path / RESOURCE_BUNDLE / "greeting.txt").write_text("Deployed greeting\n")
    result = run(binary)
    assert (result.returncode, result.stdout) == (0, "Deployed greeting\nmessage: configured by config.json\n")


def test_resources_missing_file_exits_1(resources_bin, tmp_path):
    binary = deploy_copy(resources_bin, tmp_path)
    (tmp_path / RESOURCE_BUNDLE / "greeting.txt").unlink()
    result = run(binary)
    assert (result.returncode, result.stdout) == (1, "")
    assert "resource greeting.txt missing" in result.stderr


# --- (f) networking ---------------------------------------------------------------------------------

@pytest.fixture(params=NETWORKING_MODES)
def networking_service(request) -> Path:
    return swift_build_fixture("networking", request.param) / "networking-service"


@pytest.fixture
def page_server():
    """A Python HTTP server on 127.0.0.1 with one page, /page; anything else is 404."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"fixture page body" if self.path == "/page" else b"no such page"
            self.send_response(200 if self.path == "/page" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_networking_routes(networking_service):
    with running(networking_service) as service:
        assert json.loads(http_get(service.url("/health"))[2]) == {"status": "ok"}
        status, headers, body = http_get(service.url("/xml"))
        assert (status, headers["Content-Type"]) == (200, "application/json")
        assert json.loads(body) == {"root": "inventory", "children": 3}
        assert run(networking_service, "--check", service.url("/xml")).returncode == 0
        assert service.stop(signal.SIGTERM) == (0, ["stopping"])


def test_networking_fetch(networking_service, page_server):
    ok = run(networking_service, "--fetch", f"{page_server}/page")
    assert (ok.returncode, ok.stdout) == (0, "HTTP 200\nfixture page body\n"), ok.stderr

    missing = run(networking_service, "--fetch", f"{page_server}/other")
    assert (missing.returncode, missing.stdout.splitlines()[0]) == (1, "HTTP 404")

    closed = run(networking_service, "--fetch", f"http://127.0.0.1:{free_port()}/")
    assert closed.returncode == 1 and "failed" in closed.stdout


def test_networking_fetch_against_itself(networking_service):
    # URLSession (libcurl) talking to MiniHTTP: both halves of the fixture in one request.
    with running(networking_service) as service:
        result = run(networking_service, "--fetch", service.url("/health"))
        assert (result.returncode, result.stdout) == (0, 'HTTP 200\n{"status":"ok"}\n')


# --- (g) dep-server: positional <host> <port>, /healthz (more in test_dependencies.py) ---------------

@pytest.fixture(params=ALL_MODES)
def dep_server(request) -> Path:
    return swift_build_fixture("dep-server", request.param) / "dep-server"


def test_dep_server_binds_a_host_name_and_stops_on_sigint(dep_server):
    port = free_port()
    proc = subprocess.Popen([str(dep_server), "localhost", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        assert proc.stdout.readline() == f"listening on localhost:{port}\n"
        status, headers, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert (status, headers["Content-Type"], body) == (200, "text/plain; charset=utf-8", "ok\n")
        assert http_get(f"http://127.0.0.1:{port}/healthz", method="POST", data=b"x")[0] == 405
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0 and proc.stdout.read() == "stopping\n"
    finally:
        reap(proc)


# --- (h) worker and name-lookup -----------------------------------------------------------------------

@pytest.fixture(params=ALL_MODES)
def worker_dir(request) -> Path:
    return swift_build_fixture("worker", request.param)


def test_worker_heartbeats_until_sigterm(worker_dir):
    proc = subprocess.Popen([str(worker_dir / "worker"), "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=clean_env())
    try:
        assert proc.stdout.readline() == "worker started\n"
        first, second = proc.stdout.readline().split(), proc.stdout.readline().split()
        assert (first[:2], second[:2]) == (["heartbeat", "1"], ["heartbeat", "2"]) and first[2] != second[2]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0
        assert proc.stdout.read().splitlines()[-1:] == ["stopping"]
    finally:
        reap(proc)


@pytest.mark.parametrize("args", [["0"], ["soon"], ["1", "2"]])
def test_worker_usage_errors(worker_dir, args):
    result = run(worker_dir / "worker", *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", "usage: worker [interval-seconds]\n")


def test_name_lookup(worker_dir):
    found = run(worker_dir / "name-lookup", "localhost")
    assert found.returncode == 0 and "localhost 127.0.0.1" in found.stdout.splitlines(), found
    missing = run(worker_dir / "name-lookup", "no-such-name.invalid")
    assert missing.returncode == 1 and missing.stderr.startswith("name-lookup: no-such-name.invalid: ")
    assert run(worker_dir / "name-lookup").returncode == 2
