"""From a crash to a symbolicated backtrace: debug_store, crash_log, symbolicate and playbooks/crash_report.yml.

http-service's opt-in /crash route (HTTP_CRASH_ROUTE=1) traps in crashOnPurpose() by way of the standard library's
print(). The crash happens for real: locally in every link mode (the bag's program on its own libraries), on a
systemd test host (the journal) and in a scratch image run by the container role (the container log), and the
symbolicated frames must name that function with its file and line, from a store folder and through Debian's
debuginfod on 127.0.0.1.
"""
from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support import (FIXTURES, REPO, built_fixture, free_port, remove_tags, require, run_module, run_playbook,
                     start_systemd_host, swift_build_fixture, swift_bin_dir, tool_env)

pytestmark = pytest.mark.slow

CRASH_SOURCE = FIXTURES / "http-service" / "Sources" / "http-service" / "Crash.swift"
CRASH_LINE = next(number for number, line in enumerate(CRASH_SOURCE.read_text().splitlines(), 1) if "the trap:" in line)
SERVICE_PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "service.yml"
CONTAINER_PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "container.yml"
CRASH_REPORT = REPO / "playbooks" / "crash_report.yml"
IMAGE = "swiftlinux-debug-crash/http"
HOST = "swiftlinux-debug-host"
CONTAINER = "swiftlinux-debug-ct"
CRASH_ENV = {"HTTP_CRASH_ROUTE": "1"}


def build_id(mode: str) -> str:
    return built_fixture("http-service", mode)["products"]["http-service"]["elf"]["build_id"]


def names_the_trap(frames: list[dict]) -> bool:
    return any(frame["function"] == "crashOnPurpose()" and (frame["file"] or "").endswith("/Crash.swift")
               and frame["line"] == CRASH_LINE for frame in frames)


def one_sentence(result: dict, *parts: str) -> str:
    assert result.get("failed"), result
    message = result["msg"]
    assert "Traceback" not in message and "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    """The dynamic build as a bag: bin/http-service on lib/libswiftCore.so and friends."""
    dest = tmp_path_factory.mktemp("debug-bag") / "bag"
    result = run_module("shared_objects", {"executables": [built_fixture("http-service", "dynamic")["products"]
                                                           ["http-service"]["path"]], "dest": str(dest)})
    assert not result.get("failed"), result.get("msg")
    return dest


@pytest.fixture(scope="module")
def store(tmp_path_factory, bag) -> Path:
    """A store with the static builds, the dynamic build (program + .debug) and the bag's libraries."""
    path = tmp_path_factory.mktemp("debug-store") / "store"
    paths = [str(swift_build_fixture("http-service", mode)) for mode in ("static_executable", "static_stdlib",
                                                                         "dynamic")] + [str(bag)]
    result = run_module("debug_store", {"store": str(path), "paths": paths})
    assert not result.get("failed") and result["changed"], result
    return path


def crash_locally(program: Path, extra_env: dict | None = None) -> str:
    """Run http-service with the /crash route and the toolchain's backtracer, crash it, return everything it printed."""
    port = free_port()
    backtracer = swift_bin_dir().parent / "libexec" / "swift" / "linux" / "swift-backtrace-static"
    env = dict(tool_env(), **CRASH_ENV, **(extra_env or {}),
               SWIFT_BACKTRACE=f"enable=yes,sanitize=yes,swift-backtrace={backtracer}")
    proc = subprocess.Popen([str(program), "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        with pytest.raises(OSError):  # the program dies while answering
            urllib.request.urlopen(f"http://127.0.0.1:{port}/crash", timeout=20).read()
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return output.decode("utf-8", "replace")


# ---- the store ------------------------------------------------------------------------------------------------

def test_store_files_by_build_id_in_the_debuginfod_layout_and_again_changes_nothing(store, bag):
    for mode in ("static_executable", "static_stdlib", "dynamic"):
        entry = store / "buildid" / build_id(mode)
        assert (entry / "executable").is_file() and (entry / "debuginfo").is_file(), sorted(entry.iterdir())
    libswift = run_module("elf_info", {"path": str(bag / "lib" / "libswiftCore.so")})["elf"]["build_id"]
    assert (store / "buildid" / libswift / "executable").is_file()
    again = run_module("debug_store", {"store": str(store), "paths": [str(swift_build_fixture("http-service", "dynamic")),
                                                                      str(bag)]})
    assert not again.get("failed") and again["changed"] is False, again


def test_store_check_mode_writes_nothing(tmp_path):
    target = tmp_path / "new-store"
    result = run_module("debug_store", {"store": str(target), "paths": [str(swift_build_fixture(
        "http-service", "static_executable"))]}, check_mode=True)
    assert result["changed"] and result["filed"][0]["written"] == ["debuginfo", "executable"], result
    assert not target.exists()


# ---- symbolication of real crashes, every link mode --------------------------------------------------------------

@pytest.mark.parametrize("mode", ["static_executable", "static_stdlib", "bag"])
def test_local_crash_is_symbolicated_to_the_trapping_function(mode, store, bag):
    program = bag / "bin" / "http-service" if mode == "bag" else swift_build_fixture("http-service", mode) / "http-service"
    log = crash_locally(program)
    assert "*** Program crashed" in log, log
    build_ids = {"http-service": build_id(mode)} if mode == "static_executable" else {}
    result = run_module("symbolicate", {"log": log, "store": str(store), "build_ids": build_ids})
    assert not result.get("failed"), result.get("msg")
    assert names_the_trap(result["frames"]), "\n".join(result["backtrace"])
    assert any("crashOnPurpose() at " in line and f"Crash.swift:{CRASH_LINE}" in line for line in result["backtrace"])
    if mode == "bag":
        # print() runs in the bag's libswiftCore.so: those frames resolve through that library's own build-id.
        library = run_module("elf_info", {"path": str(bag / "lib" / "libswiftCore.so")})["elf"]["build_id"]
        inside = [f for f in result["frames"] if f["image"] == "libswiftCore.so"]
        assert inside and all(f["build_id"] == library for f in inside), result["frames"]
        assert any(f["function"] and f["function"].startswith("print(") for f in inside), result["backtrace"]


def test_addr2line_gives_the_same_line(store):
    log = crash_locally(swift_build_fixture("http-service", "static_stdlib") / "http-service")
    result = run_module("symbolicate", {"log": log, "store": str(store), "symbolizer": "addr2line"})
    assert not result.get("failed"), result.get("msg")
    assert names_the_trap(result["frames"]), "\n".join(result["backtrace"])


# ---- bad inputs ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stdlib_log() -> str:
    return crash_locally(swift_build_fixture("http-service", "static_stdlib") / "http-service")


def test_a_log_without_a_backtrace_is_one_error(store):
    one_sentence(run_module("symbolicate", {"log": "listening on 127.0.0.1:8080\nstopping\n", "store": str(store)}),
                 "no Swift backtrace", "SWIFT_BACKTRACE")


def test_a_build_id_not_in_the_store_is_one_error(tmp_path, stdlib_log):
    empty = tmp_path / "empty-store"
    (empty / "buildid").mkdir(parents=True)
    one_sentence(run_module("symbolicate", {"log": stdlib_log, "store": str(empty)}),
                 f"build-id {build_id('static_stdlib')} (http-service) is not in the debug store", "debug_store")


def test_a_folder_that_is_not_a_store_is_one_error(tmp_path, stdlib_log):
    one_sentence(run_module("symbolicate", {"log": stdlib_log, "store": str(tmp_path)}),
                 "is not a debug store (no buildid/ folder inside)")
    (tmp_path / "unrelated.txt").write_text("mine")
    one_sentence(run_module("debug_store", {"store": str(tmp_path), "paths": [str(swift_build_fixture(
        "http-service", "static_stdlib"))]}), "exists and is not a debug store")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrelated.txt"]


@pytest.mark.parametrize("damage", ["truncated", "not-elf"])
def test_a_damaged_debug_file_is_one_error(tmp_path, store, stdlib_log, damage):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    debuginfo = copy / "buildid" / build_id("static_stdlib") / "debuginfo"
    data = debuginfo.read_bytes()
    debuginfo.write_bytes(data[:4096] if damage == "truncated" else b"not an ELF file\n")
    one_sentence(run_module("symbolicate", {"log": stdlib_log, "store": str(copy)}),
                 "the debug file for http-service", "is not")
    # Filing refuses the same damage, before anything is written.
    build = tmp_path / "build"
    shutil.copytree(swift_build_fixture("http-service", "static_stdlib"), build)
    (build / "http-service.debug").write_bytes(data[:4096] if damage == "truncated" else b"not an ELF file\n")
    one_sentence(run_module("debug_store", {"store": str(tmp_path / "new"), "paths": [str(build)]}),
                 "cannot be filed as a debug file")
    assert not (tmp_path / "new" / "buildid" / build_id("static_stdlib")).exists()


def test_a_build_id_that_is_not_hex_never_becomes_a_path(store, stdlib_log):
    hostile = stdlib_log.replace(build_id("static_stdlib"), "../../../../etc/passwd")
    one_sentence(run_module("symbolicate", {"log": hostile, "store": str(store)}),
                 "'../../../../etc/passwd' is not a GNU build-id")
    no_id = stdlib_log.replace(build_id("static_stdlib"), "<no build ID>")
    one_sentence(run_module("symbolicate", {"log": no_id, "store": str(store)}), "no build-id for http-service")
    one_sentence(run_module("symbolicate", {"log": no_id, "store": str(store),
                                            "build_ids": {"http-service": "../../etc"}}), "is not a GNU build-id")


# ---- debuginfod on 127.0.0.1 ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def debuginfod(store, tmp_path_factory):
    """Debian's debuginfod serving the store, in a network namespace of its own that has only loopback: 0.8.x binds
    every address, so this keeps it on 127.0.0.1. Clients join that namespace with nsenter."""
    binary = require("debuginfod", "debuginfod")
    require("debuginfod-find", "debuginfod")
    work = tmp_path_factory.mktemp("debuginfod")
    log = open(work / "debuginfod.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(["unshare", "--net", "--", "sh", "-c",
                             'ip link set lo up && exec "$0" -F -d "$1" -p 8002 -t 0 -g 0 "$2"',
                             binary, str(work / "index.sqlite"), str(store)], stdout=log, stderr=subprocess.STDOUT)
    wrapper = ("nsenter", f"--net=/proc/{proc.pid}/ns/net", "--")
    env = dict(tool_env(), DEBUGINFOD_URLS="http://127.0.0.1:8002")
    deadline = time.monotonic() + 60
    for attempt in range(1000):
        # A fresh cache per try: debuginfod-find remembers a miss (before the first scan ends) for ten minutes.
        env["DEBUGINFOD_CACHE_PATH"] = str(work / f"cache-{attempt}")
        found = subprocess.run([*wrapper, "debuginfod-find", "debuginfo", build_id("static_stdlib")], env=env,
                               capture_output=True, text=True, check=False)
        if found.returncode == 0 or time.monotonic() > deadline or proc.poll() is not None:
            break
        time.sleep(0.5)
    try:
        assert found.returncode == 0, f"{found.stderr}\n{(work / 'debuginfod.log').read_text()}"
        yield {"wrapper": wrapper, "env": env, "found": found.stdout.strip()}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_debuginfod_serves_the_store_to_standard_clients(debuginfod, store):
    # debuginfod-find is what gdb and elfutils use: the file it fetched is the store's debuginfo.
    fetched = Path(debuginfod["found"])
    assert fetched.read_bytes() == (store / "buildid" / build_id("static_stdlib") / "debuginfo").read_bytes()


def test_symbolicate_through_debuginfod(debuginfod, stdlib_log, bag):
    result = run_module("symbolicate", {"log": stdlib_log, "store": "http://127.0.0.1:8002"},
                        wrapper=debuginfod["wrapper"])
    assert not result.get("failed"), result.get("msg")
    assert names_the_trap(result["frames"]), "\n".join(result["backtrace"])
    missing = stdlib_log.replace(build_id("static_stdlib"), "ab" * 20)
    one_sentence(run_module("symbolicate", {"log": missing, "store": "http://127.0.0.1:8002"},
                            wrapper=debuginfod["wrapper"]), "is not in the debug store http://127.0.0.1:8002")


# ---- a systemd host: the journal, crash_log and playbooks/crash_report.yml ------------------------------------------

@pytest.fixture(scope="module")
def crashed_host(store, bag, registry):
    """One host, two stripped services crashed through /crash: crashy (the static executable with
    swift-backtrace-static) and crashy-bag (the bag, with its own libexec/swift-backtrace).

    The bag reaches the host through the session's registry (release_push, then the role's pull): one release module
    call instead of a copy per file, which for the bag's dozen files took 2 to 4 times as long. So the host shares
    this machine's loopback, and the services listen on free ports."""
    container = start_systemd_host(HOST, network_mode="host")
    try:
        pushed = run_module("release_push", {"path": str(bag), "name": f"{registry.host}/swiftlinux-debug/crashy-bag"})
        assert not pushed.get("failed"), pushed.get("msg")
        services = {"crashy": (swift_build_fixture("http-service", "static_executable"), {}),
                    "crashy-bag": (bag, {"service_pull_reference": pushed["reference"]})}
        for name, (artifact, delivery) in services.items():
            port = free_port()
            result = run_playbook(SERVICE_PLAYBOOK, HOST, {
                "service_name": name, "service_artifact": str(artifact),
                "service_args": ["--bind", "127.0.0.1", "--port", str(port)], "service_port": port,
                "service_environment": CRASH_ENV, **delivery,
                "service_probe": {"kind": "http", "port": port, "path": "/health", "retries": 10, "delay": 1}})
            assert result.rc == 0, result.failures or result.output[-3000:]
            get = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/crash', timeout=20)"
            assert container.exec_run(["python3", "-c", get]).exit_code != 0
        deadline = time.monotonic() + 60
        for name in services:
            while b"Backtrace took" not in container.exec_run(["journalctl", "-u", name, "-o", "cat"]).output:
                assert time.monotonic() < deadline, container.exec_run(["journalctl", "-u", name]).output.decode()
                time.sleep(0.5)
        yield container
    finally:
        container.remove(force=True)


def test_crash_report_playbook_prints_the_trap_from_the_journal(crashed_host, store):
    result = run_playbook(CRASH_REPORT, HOST, {"crash_service": "crashy", "crash_store": str(store)})
    assert result.rc == 0, result.failures or result.output[-3000:]
    log = result.results["Read the last crash report from the journal"]
    # The Swift 6.3 backtracer prints no build-id for a static executable; crash_log reads it from the file.
    # Stripped, without its .debug on the host: the backtracer itself names no function.
    assert "<unknown> in http-service" in log["log"] and "crashOnPurpose" not in log["log"]
    assert "<no build ID>" in log["log"] and log["build_ids"] == {"http-service": build_id("static_executable")}
    trace = result.results["Symbolicate it against the debug store"]
    assert names_the_trap(trace["frames"]), "\n".join(trace["backtrace"])
    printed = "\n".join(result.results["Print the symbolicated backtrace"]["msg"])
    assert "crashOnPurpose() at " in printed and f"Crash.swift:{CRASH_LINE}" in printed, printed
    assert result.changed == 0


def test_crash_report_of_a_stripped_bag_resolves_the_program_and_its_libraries(crashed_host, store, bag):
    unit = crashed_host.exec_run(["systemctl", "show", "crashy-bag", "-p", "Environment"]).output.decode()
    assert unit.strip().endswith("/current/libexec/swift-backtrace"), unit
    result = run_playbook(CRASH_REPORT, HOST, {"crash_service": "crashy-bag", "crash_store": str(store)})
    assert result.rc == 0, result.failures or result.output[-3000:]
    log = result.results["Read the last crash report from the journal"]
    # The bag's backtracer ran on a host without Swift: it names the images with their build-ids, but the stripped
    # program's own frames only by offset.
    assert "<unknown> in http-service" in log["log"] and "crashOnPurpose" not in log["log"], log["log"]
    assert build_id("dynamic") in log["log"], log["log"]
    trace = result.results["Symbolicate it against the debug store"]
    assert names_the_trap(trace["frames"]), "\n".join(trace["backtrace"])
    # print() runs in the bag's libswiftCore.so: those frames resolve through that library's own build-id.
    library = run_module("elf_info", {"path": str(bag / "lib" / "libswiftCore.so")})["elf"]["build_id"]
    inside = [f for f in trace["frames"] if f["image"] == "libswiftCore.so"]
    assert inside and all(f["build_id"] == library for f in inside), trace["frames"]
    assert any(f["function"] and f["function"].startswith("print(") for f in inside), trace["backtrace"]


def test_journal_of_a_service_that_never_crashed_is_one_error(crashed_host, store):
    result = run_playbook(CRASH_REPORT, HOST, {"crash_service": "systemd-journald", "crash_store": str(store)})
    assert result.rc != 0
    assert any("the journal of systemd-journald" in f and "no Swift backtrace" in f for f in result.failures), \
        result.failures


def test_journal_crash_through_debuginfod(crashed_host, debuginfod):
    log = run_playbook(CRASH_REPORT, HOST, {"crash_service": "crashy", "crash_store": "/nonexistent"})
    read = log.results["Read the last crash report from the journal"]
    one_sentence(log.results["Symbolicate it against the debug store"], "/nonexistent is not a debug store")
    result = run_module("symbolicate", {"log": read["log"], "build_ids": read["build_ids"],
                                        "store": "http://127.0.0.1:8002"}, wrapper=debuginfod["wrapper"])
    assert not result.get("failed"), result.get("msg")
    assert names_the_trap(result["frames"]), "\n".join(result["backtrace"])


# ---- a scratch image run by the container role: the container log ---------------------------------------------------

@pytest.fixture(scope="module")
def crashed_container(docker_client, tmp_path_factory):
    archive = tmp_path_factory.mktemp("debug-image") / "image.tar"
    executable = swift_build_fixture("http-service", "static_executable") / "http-service"
    built = run_module("oci_image", {"executable": str(executable), "name": IMAGE, "tag": "v1", "format": "archive",
                                     "dest": str(archive)})
    assert not built.get("failed"), built
    port = free_port()
    try:
        result = run_playbook(CONTAINER_PLAYBOOK, "localhost", {
            "container_name": CONTAINER, "container_image": f"{IMAGE}:v1", "container_image_archive": str(archive),
            "container_port": port, "container_command": ["--bind", "127.0.0.1", "--port", str(port)],
            "container_env": CRASH_ENV, "container_labels": {"swiftlinux.test": "debugging"},
            "container_probe": {"kind": "http", "port": port, "path": "/health", "retries": 10}})
        assert result.rc == 0, result.failures or result.output[-3000:]
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/crash", timeout=20).read()
        container = docker_client.containers.get(CONTAINER)
        deadline = time.monotonic() + 60
        while b"Backtrace took" not in container.logs():
            assert time.monotonic() < deadline, container.logs().decode()
            time.sleep(0.5)
        yield container.logs(timestamps=True).decode()
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": "swiftlinux.test=debugging"}):
            container.remove(force=True)
        remove_tags(docker_client, IMAGE + ":", f"swiftlinux-previous/{CONTAINER}")


def test_container_log_crash_is_symbolicated(crashed_container, store):
    assert "/app/http-service" in crashed_container, crashed_container[-3000:]
    result = run_module("symbolicate", {"log": crashed_container, "store": str(store),
                                        "build_ids": {"http-service": build_id("static_executable")}})
    assert not result.get("failed"), result.get("msg")
    assert names_the_trap(result["frames"]), "\n".join(result["backtrace"])
