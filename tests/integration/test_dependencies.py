"""Real dependency graphs in swift_build: mirrors, one shared resolution, resolved versions, the SBOM.

dep-server depends on https://git.swiftlinux.invalid/greeting.git, a host that never resolves; the
tests serve tests/fixtures/dep-server-greeting to SwiftPM as a tagged git repository through the
`mirrors` option (tests/support.py), so SwiftPM clones, computes versions and checks out for real.
Each link mode is built once per session (built_fixture) and the binaries are run.
"""
from __future__ import annotations

import contextlib
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
from pathlib import Path

import pytest

from support import (FIXTURES, GREETING_URL, GREETING_VERSION, LINK_MODES, built_fixture, fixture_args,
                     greeting_repository, run_module)

pytestmark = pytest.mark.slow

RESOLVED = FIXTURES / "dep-server" / ".build" / "swiftlinux" / "dependencies"
ONE_LINE = "dependency {url} could not be fetched ({reason}); add a mirror with the mirrors option or vendor it"


def greeting_pin() -> dict:
    revision = subprocess.run(["git", "rev-parse", GREETING_VERSION + "^{commit}"], cwd=greeting_repository(),
                              capture_output=True, text=True, check=True).stdout.strip()
    return {"identity": "greeting", "url": GREETING_URL, "version": GREETING_VERSION, "revision": revision,
            "branch": None}


def fnv1a(text: str) -> int:
    """What the C target's dep_checksum computes, written again here to check the binary's answer."""
    value = 2166136261
    for byte in text.encode():
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return value


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextlib.contextmanager
def started(cmd: list[str], first_line: str | None):
    """Run cmd with its stdout read by a thread; wait for `first_line`; kill it on the way out."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin"})
    lines: queue.Queue[str | None] = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        if first_line is not None:
            line = lines.get(timeout=10)
            assert line == first_line, f"{line!r} (stderr: {proc.stderr.read() if line is None else ''})"
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        thread.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


def stop(proc, lines) -> tuple[int, list[str]]:
    proc.send_signal(signal.SIGTERM)
    status = proc.wait(timeout=5)
    rest = []
    while (line := lines.get(timeout=5)) is not None:
        rest.append(line)
    return status, rest


# ---- one resolution for every mode ---------------------------------------------------------------

def test_every_mode_uses_the_one_resolution_and_reports_the_resolved_version():
    results = {mode: built_fixture("dep-server", mode) for mode in LINK_MODES}
    for mode, result in results.items():
        assert result["dependencies"] == [greeting_pin()], mode
        manifest = json.loads(Path(result["manifest"]).read_text())
        assert manifest["dependencies"] == [greeting_pin()]
    # One bare clone and one working copy, in the shared folder; each mode's scratch folder links to them.
    assert [p.name.split("-")[0] for p in (RESOLVED / "repositories").iterdir()] == ["greeting"]
    assert [p.name for p in (RESOLVED / "checkouts").iterdir()] == ["greeting"]
    scratch_dirs = [RESOLVED.parent / f"{mode}-release" for mode in LINK_MODES]
    for scratch in scratch_dirs:
        for name in ("repositories", "checkouts"):
            assert (scratch / name).is_symlink() and (scratch / name).resolve() == RESOLVED / name
    clones = [Path(current) / "repositories" for current, dirs, files in os.walk(RESOLVED.parent)
              if "repositories" in dirs and not (Path(current) / "repositories").is_symlink()]
    assert clones == [RESOLVED / "repositories"], "a link mode fetched the dependency again"
    # The mirror's location stays out of the package: Package.resolved names the URL as the manifest does.
    pins = json.loads((FIXTURES / "dep-server" / "Package.resolved").read_text())["pins"]
    assert [(p["identity"], p["location"]) for p in pins] == [("greeting", GREETING_URL)]
    assert not (FIXTURES / "dep-server" / ".swiftpm" / "configuration" / "mirrors.json").exists()


def test_sbom_lists_the_package_and_its_resolved_dependency():
    result = built_fixture("dep-server", "static_executable")
    sbom = json.loads(Path(result["sbom"]).read_text())
    assert sbom["spdxVersion"] == "SPDX-2.3" and Path(result["sbom"]).parent == Path(result["manifest"]).parent
    packages = {p["SPDXID"]: p for p in sbom["packages"]}
    root = packages[sbom["documentDescribes"][0]]
    assert root["name"] == "dep-server"
    pin = greeting_pin()
    greeting = next(p for p in sbom["packages"] if p["name"] == "greeting")
    assert greeting["versionInfo"] == GREETING_VERSION
    assert greeting["downloadLocation"] == f"git+{GREETING_URL}@{pin['revision']}"
    assert greeting["externalRefs"][0]["referenceLocator"] == "pkg:swift/git.swiftlinux.invalid/greeting@1.0.0"
    assert {"spdxElementId": root["SPDXID"], "relationshipType": "DEPENDS_ON",
            "relatedSpdxElement": greeting["SPDXID"]} in sbom["relationships"]
    shipped = {f["fileName"]: f["checksums"][-1]["checksumValue"] for f in sbom["files"]}
    assert shipped == {"./dep-server": result["products"]["dep-server"]["sha256"]}


# ---- the binaries serve ------------------------------------------------------------------------

def runnable(mode: str, tmp_path: Path) -> str:
    """The static builds as they are; the dynamic one from a bag of its shared objects, as it ships."""
    binary = built_fixture("dep-server", mode)["products"]["dep-server"]["path"]
    if mode != "dynamic":
        return binary
    bag = run_module("shared_objects", {"executables": [binary], "dest": str(tmp_path / "bag")})
    assert not bag.get("failed"), bag.get("msg")
    assert any("libswiftCore.so" in str(lib) for lib in bag["libraries"]), bag["libraries"]
    return str(tmp_path / "bag" / bag["manifest"]["launch"]["dep-server"][0])


@pytest.mark.parametrize("mode", LINK_MODES)
def test_dep_server_serves_healthz_and_its_dependency_in_every_mode(mode, tmp_path):
    binary = runnable(mode, tmp_path)
    port = free_port()
    with started([binary, "127.0.0.1", str(port)], f"listening on 127.0.0.1:{port}") as (proc, lines):
        assert http_get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        status, body = http_get(f"http://127.0.0.1:{port}/hello?name=Ops%20team")
        assert status == 200
        assert json.loads(body) == {"greeting": "Hello, Ops team!", "greetingVersion": GREETING_VERSION,
                                    "checksum": fnv1a("Hello, Ops team!")}
        assert http_get(f"http://127.0.0.1:{port}/health")[0] == 404
        assert stop(proc, lines) == (0, ["stopping"])


def test_dep_server_usage_errors():
    binary = built_fixture("dep-server", "static_executable")["products"]["dep-server"]["path"]
    for args, message in (([], "usage: dep-server <host> <port>"), (["--check", "http://x/"], "invalid port"),
                          (["127.0.0.1", "0"], "invalid port '0'"),
                          (["no-such-host.invalid", "8080"], "cannot resolve host 'no-such-host.invalid'")):
        done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 2 and message in done.stderr and done.stdout == "", (args, done)


def test_worker_beats_every_second_listens_on_nothing_and_stops_on_sigterm():
    binary = built_fixture("worker", "static_executable")["products"]["worker"]["path"]
    with started([binary], "worker started") as (proc, lines):
        beats = [lines.get(timeout=5), lines.get(timeout=5)]
        assert [b.split()[:2] for b in beats] == [["heartbeat", "1"], ["heartbeat", "2"]]
        sockets = [os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        assert not [s for s in sockets if s.startswith("socket:")], sockets
        status, rest = stop(proc, lines)
        assert status == 0 and rest[-1] == "stopping"


# ---- host names in a fully static glibc binary -----------------------------------------------------

DNS_RESPONDER = """
import socket, struct
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", 53))
while True:  # swiftlinux-dns.test has one A record, 127.0.0.9; every other name does not exist
    query, peer = server.recvfrom(512)
    end = 12
    while query[end]:
        end += query[end] + 1
    question, qtype = query[12:end + 5], query[end + 1:end + 3]
    known = query[12:end] == b"\\x0eswiftlinux-dns\\x04test"
    answer = b"\\xc0\\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 9])
    answer = answer if known and qtype == b"\\0\\1" else b""
    flags = 0x8180 if known else 0x8183  # NOERROR, or NXDOMAIN
    server.sendto(query[:2] + struct.pack("!HHHHH", flags, 1, 1 if answer else 0, 0, 0) + question + answer, peer)
"""


def test_static_executable_resolves_files_and_dns_names(tmp_path):
    """localhost, an /etc/hosts name and a DNS name, in a container where no libnss_*.so can be loaded."""
    import docker

    lookup = Path(built_fixture("worker", "static_executable")["products"]["name-lookup"]["path"])
    shutil.copy2(lookup, tmp_path / "name-lookup")
    (tmp_path / "dns.py").write_text(DNS_RESPONDER)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n127.0.0.7 swiftlinux-files.test\n")
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    script = ("python3 /t/dns.py & sleep 1; rm -f /lib/*/libnss_* /usr/lib/*/libnss_*; "
              "for name in localhost swiftlinux-files.test swiftlinux-dns.test; do /t/name-lookup $name; done; "
              "/t/name-lookup nothing-knows-this.invalid 2>&1; echo rc=$?")
    out = docker.from_env().containers.run(
        "swiftlinux-testhost:bookworm", ["sh", "-c", script], name=f"swiftlinux-test-deps-nss-{os.getpid()}",
        network_mode="none", remove=True, stderr=True, labels={"swiftlinux.test": "pytest"},
        volumes={str(tmp_path): {"bind": "/t", "mode": "ro"},
                 str(tmp_path / "hosts"): {"bind": "/etc/hosts", "mode": "ro"},
                 str(tmp_path / "resolv.conf"): {"bind": "/etc/resolv.conf", "mode": "ro"}}).decode()
    assert out.splitlines() == ["localhost 127.0.0.1", "swiftlinux-files.test 127.0.0.7",
                                "swiftlinux-dns.test 127.0.0.9",
                                "name-lookup: nothing-knows-this.invalid: Name or service not known", "rc=1"], out


def test_name_lookup_of_localhost_and_this_machines_hosts_file():
    lookup = built_fixture("worker", "static_executable")["products"]["name-lookup"]["path"]
    names = [name for line in Path("/etc/hosts").read_text().splitlines() if line.strip()
             and not line.lstrip().startswith("#") and line.split()[0] == "127.0.0.1" for name in line.split()[1:]]
    assert "localhost" in names, "/etc/hosts of this machine maps no name to 127.0.0.1; add '127.0.0.1 localhost'"
    for name in names:
        done = subprocess.run([lookup, name], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0 and f"{name} 127.0.0.1" in done.stdout.splitlines(), (name, done)


# ---- failures: one line each, nothing built ------------------------------------------------------

def _package_copy(tmp_path: Path) -> Path:
    package = tmp_path / "dep-server"
    shutil.copytree(FIXTURES / "dep-server", package,
                    ignore=shutil.ignore_patterns(".build", ".swiftpm", "Package.resolved"))
    return package


def test_unfetchable_dependency_gives_one_line_naming_it(tmp_path):
    package = _package_copy(tmp_path)
    empty = tmp_path / "not-a-repository"
    empty.mkdir()
    cases = [({}, "Could not resolve host: git.swiftlinux.invalid"),
             ({"mirrors": {GREETING_URL: str(empty)}}, None)]
    for extra, reason in cases:
        dest = tmp_path / "out"
        result = run_module("swift_build", {"package_path": str(package), "link_mode": "static_executable",
                                            "dest": str(dest), **extra})
        msg = result["msg"]
        assert result.get("failed") and "\n" not in msg and "Traceback" not in msg, result
        prefix, rest = msg.split(" could not be fetched (", 1) if " could not be fetched (" in msg else (msg, "")
        assert prefix == f"dependency {GREETING_URL}", msg
        assert rest.endswith("); add a mirror with the mirrors option or vendor it") and len(msg) < 300, msg
        if reason:
            assert msg == ONE_LINE.format(url=GREETING_URL, reason=reason)
        assert not dest.exists()
    assert not (package / ".swiftpm").exists(), "the mirror configuration must stay out of the package"


def test_pinned_resolution_without_package_resolved_is_one_sentence(tmp_path):
    package = _package_copy(tmp_path)
    result = run_module("swift_build", {"package_path": str(package), "dest": str(tmp_path / "out"),
                                        "force_resolved_versions": True, **fixture_args("dep-server")})
    assert result.get("failed") and "\n" not in result["msg"], result
    assert result["msg"].startswith("force_resolved_versions needs a Package.resolved in " + str(package))
    assert not (tmp_path / "out").exists()


def test_pinned_resolution_uses_package_resolved_and_check_mode_builds_nothing(tmp_path):
    package = _package_copy(tmp_path)
    (package / "Package.resolved").write_text(json.dumps({"pins": [{
        "identity": "greeting", "kind": "remoteSourceControl", "location": GREETING_URL,
        "state": {"revision": greeting_pin()["revision"], "version": GREETING_VERSION}}], "version": 2}))
    dest = tmp_path / "out"
    result = run_module("swift_build", {"package_path": str(package), "dest": str(dest),
                                        "force_resolved_versions": True, "build_args": ["--jobs", "2"],
                                        **fixture_args("dep-server")}, check_mode=True)
    assert result["changed"] and not result.get("failed"), result
    assert result["dependencies"] == [greeting_pin()] and not dest.exists()
