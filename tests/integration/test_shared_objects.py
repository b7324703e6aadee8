"""shared_objects on real dynamic builds of the fixtures, with the bags run inside real test hosts.

The test hosts (swiftlinux-testhost:bookworm and :bullseye) are locally built Debian images with
python3 and no Swift toolchain. Containers use host networking (services bind 127.0.0.1) or none,
are labelled swiftlinux.test=pytest and are always removed.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import docker
import pytest

from support import built_fixture, run_module, swift_bin_dir, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.docker]

BOOKWORM = "swiftlinux-testhost:bookworm"
BULLSEYE = "swiftlinux-testhost:bullseye"
LABELS = {"swiftlinux.test": "pytest"}
SERVICES = [("http-service", "http-service"), ("foundation-service", "foundation-service"),
            ("networking", "networking-service")]
BASE = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2",
        "libpthread.so.0", "libdl.so.2", "librt.so.1", "libresolv.so.2", "libutil.so.1"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def products(fixture: str, mode: str = "dynamic") -> dict:
    return built_fixture(fixture, mode)["products"]


@pytest.fixture(scope="session")
def bag(tmp_path_factory):
    """bag(fixture, scope, resolver): a bag of every executable of a fixture's dynamic build, once per session."""
    root = tmp_path_factory.mktemp("bags")

    @functools.cache
    def make(fixture: str, scope: str = "non-system", resolver: str = "elf") -> dict:
        built = products(fixture)
        result = run_module("shared_objects", {
            "executables": [p["path"] for p in built.values()],
            "resources": [r for p in built.values() for r in p["resources"]],
            "scope": scope, "resolver": resolver,
            "dest": str(root / f"{fixture}-{scope}-{resolver}"),
        })
        assert not result.get("failed"), result.get("msg")
        return result
    return make


# ---- docker plumbing (test orchestration only) ------------------------------------------------------

@pytest.fixture(scope="session")
def engine(docker_client):
    for image in (BOOKWORM, BULLSEYE):
        try:
            docker_client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.fail(f"test host image {image} is missing; run `make test-hosts`", pytrace=False)
    return docker_client


def run_in_host(engine, image: str, bag_dir: str, command: list[str]) -> tuple[int, str]:
    """Run a command in a throw-away test host without network; the bag is mounted read-only at /bag."""
    container = engine.containers.create(image, command, labels=LABELS, network_mode="none",
                                         volumes={bag_dir: {"bind": "/bag", "mode": "ro"}})
    try:
        container.start()
        status = container.wait(timeout=120)
        return status["StatusCode"], container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_and_probe(engine, image: str, bag_dir: str, exe: str) -> dict:
    """Start bin/<exe> in a test host on host networking, GET /health, stop it with SIGTERM.

    Returns the body, the service's environment as the kernel sees it and its exit code.
    """
    port = free_port()
    container = engine.containers.create(image, [f"/bag/bin/{exe}", "--bind", "127.0.0.1", "--port", str(port)],
                                         labels=LABELS, network_mode="host",
                                         volumes={bag_dir: {"bind": "/bag", "mode": "ro"}})
    try:
        container.start()
        deadline = time.monotonic() + 120
        while b"listening on" not in container.logs():
            container.reload()
            assert container.status == "running", f"{exe} exited in {image}:\n{container.logs().decode()}"
            assert time.monotonic() < deadline, f"{exe} never said 'listening on':\n{container.logs().decode()}"
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as response:
            body = response.read().decode()
            status = response.status
        environ = container.exec_run(["cat", "/proc/1/environ"]).output.decode(errors="replace").split("\0")
        container.kill(signal="SIGTERM")
        exit_code = container.wait(timeout=60)["StatusCode"]
        return {"status": status, "body": body, "environ": environ, "exit": exit_code,
                "logs": container.logs().decode(errors="replace")}
    finally:
        container.remove(force=True)


def ldd_resolutions(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        if "=>" in line:
            name, target = (part.strip() for part in line.split("=>", 1))
            found[name] = target.split(" (")[0]
    return found


# ---- bags run on a host without Swift ---------------------------------------------------------------

@pytest.mark.parametrize(("fixture", "exe"), SERVICES)
def test_non_system_bag_serves_health_on_bookworm_without_swift(bag, engine, fixture, exe):
    result = bag(fixture)
    dest = result["dest"]
    code, output = run_in_host(engine, BOOKWORM, dest, [
        "sh", "-c", f"! command -v swift && ! test -e /opt/swift && ldd /bag/bin/{exe} /bag/libexec/swift-backtrace"])
    assert code == 0, output
    resolved = ldd_resolutions(output)
    assert "not found" not in output
    outside = {name: path for name, path in resolved.items() if name not in BASE and not path.startswith("/bag/")}
    assert outside == {}, f"non-system libraries resolved outside the bag: {outside}"
    assert set(result["libraries"]) <= set(resolved), "everything bagged is loaded, by the program or the backtracer"

    served = serve_and_probe(engine, BOOKWORM, dest, exe)
    assert served["status"] == 200 and served["exit"] == 0, served["logs"]
    assert not [v for v in served["environ"] if v.startswith("LD_")]


def test_networking_bag_carries_libcurl_and_libxml2_with_their_dependencies(bag):
    manifest = bag("networking")["manifest"]
    assert {"libcurl.so.4", "libxml2.so.2", "libFoundationNetworking.so", "libFoundationXML.so"} <= \
        set(manifest["libraries"])
    assert not BASE & set(manifest["libraries"])
    # libcurl's own dependencies (TLS, HTTP/2) are transitive: nothing the executable names directly.
    needed = set(products("networking")["networking-service"]["elf"]["needed"])
    transitive = set(manifest["libraries"]) - needed
    assert {"libssl.so.3", "libnghttp2.so.14"} <= transitive
    curl = next(f for f in manifest["files"] if f["path"].startswith("lib/libcurl.so.4"))
    assert curl["package"].startswith("libcurl4") and curl["package_version"]
    links = {link["path"]: link["target"] for link in manifest["links"]}
    assert links["lib/libcurl.so.4"] == os.path.basename(curl["path"])


@pytest.mark.parametrize(("fixture", "exe"), SERVICES)
def test_scope_all_bag_runs_on_bullseye_through_the_bundled_loader(bag, engine, fixture, exe):
    result = bag(fixture, "all")
    manifest, dest = result["manifest"], Path(result["dest"])
    assert manifest["interpreter"] == "lib/ld-linux-x86-64.so.2"
    assert manifest["launch"][exe] == ["lib/ld-linux-x86-64.so.2", "--library-path", "lib", "--argv0",
                                       f"bin/{exe}", f"libexec/{exe}"]
    kinds = {f["path"]: f["kind"] for f in manifest["files"]}
    assert kinds[f"bin/{exe}"] == "launcher" and kinds[f"libexec/{exe}"] == "executable"
    assert kinds["lib/ld-linux-x86-64.so.2"] == "loader"
    assert {"libc.so.6", "libstdc++.so.6", "libgcc_s.so.1"} <= set(manifest["libraries"])
    assert manifest["glibc_bundled"] == os.confstr("CS_GNU_LIBC_VERSION").split()[1], "the build host's glibc"
    script = [line for line in (dest / "bin" / exe).read_text().splitlines() if not line.startswith("#")]
    assert not [line for line in script if "LD_" in line or "export" in line], script

    served = serve_and_probe(engine, BULLSEYE, str(dest), exe)
    assert served["status"] == 200 and served["exit"] == 0, served["logs"]
    assert not [v for v in served["environ"] if v.startswith("LD_")], served["environ"]
    # The same argv in exec form, as a scratch image would run it, from the bag root.
    code, output = run_in_host(engine, BULLSEYE, str(dest), ["sh", "-c", "cd /bag && " + " ".join(
        manifest["launch"][exe]) + " --check http://127.0.0.1:1/health"])
    assert "cannot connect" in output and "error while loading" not in output, output


def test_non_system_bag_fails_on_bullseye_as_the_manifest_predicts(bag, engine):
    result = bag("http-service")
    command = ["/bag/bin/http-service", "--bind", "127.0.0.1", "--port", "1"]
    code, output = run_in_host(engine, BULLSEYE, result["dest"], command)
    assert code != 0
    assert "version `GLIBC_2.3" in output and "not found" in output, output
    missing = sorted({word.strip("`'") for word in output.split() if word.startswith("`GLIBC_")})
    required = result["manifest"]["glibc_required"]
    assert required == max((m.split("_")[1] for m in missing), key=lambda v: tuple(map(int, v.split("."))))
    assert tuple(map(int, required.split("."))) > (2, 31), "bullseye's glibc 2.31 is too old, as recorded"


def test_resources_sit_beside_the_program_for_every_scope(bag, engine):
    for scope, image in (("non-system", BOOKWORM), ("all", BULLSEYE)):
        dest = bag("resources", scope)["dest"]
        code, output = run_in_host(engine, image, dest, ["/bag/bin/resource-reader"])
        assert code == 0 and "Greetings from a resource bundle" in output, (scope, output)
        assert (Path(dest) / "bin" / "resources_resource-reader.resources").is_dir()


@pytest.mark.parametrize(("scope", "image"), [("non-system", BOOKWORM), ("all", BULLSEYE)])
def test_the_bags_backtracer_reports_a_crash_on_a_host_without_swift(bag, engine, scope, image):
    """http-service's opt-in /crash traps; the runtime starts the bag's own backtracer (for scope all through its
    launcher and the bag's loader, on bullseye's older glibc) and the report names the images by build-id."""
    result = bag("http-service", scope)
    backtracer = result["manifest"]["backtracer"]
    assert backtracer == ("bin/swift-backtrace" if scope == "all" else "libexec/swift-backtrace")
    port = free_port()
    container = engine.containers.create(
        image, ["/bag/bin/http-service", "--bind", "127.0.0.1", "--port", str(port)], labels=LABELS,
        network_mode="host", volumes={result["dest"]: {"bind": "/bag", "mode": "ro"}},
        environment={"HTTP_CRASH_ROUTE": "1", "SWIFT_BACKTRACE": f"enable=yes,swift-backtrace=/bag/{backtracer}"})
    try:
        container.start()
        deadline = time.monotonic() + 60
        while b"listening on" not in container.logs():
            assert time.monotonic() < deadline, container.logs().decode()
            time.sleep(0.2)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/crash", timeout=30).read()
        container.wait(timeout=60)
        log = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert "*** Program crashed: Illegal instruction" in log and "Backtrace took" in log, log
    assert "print(_:separator:terminator:)" in log and "in libswiftCore.so" in log, log
    assert f"/bag/{'libexec' if scope == 'all' else 'bin'}/http-service" in log, log


def test_backtrace_false_bags_none_and_bad_backtracers_are_refused(tmp_path):
    hello = products("hello")["hello"]["path"]
    result = run_module("shared_objects", {"executables": [hello], "dest": str(tmp_path / "bag"), "backtrace": False})
    assert not result.get("failed"), result.get("msg")
    assert result["manifest"]["backtracer"] is None and not (tmp_path / "bag" / "libexec").exists()
    assert "libswiftRuntime.so" not in result["libraries"], "only the backtracer loads it"
    assert run_module("artifact_info", {"path": str(tmp_path / "bag")})["backtracer"] is None
    core = tmp_path / "bag" / "lib" / "libswiftCore.so"
    fails({"executables": [hello], "dest": str(tmp_path / "b1"), "backtrace": False, "backtracer": str(core)},
          "backtracer is set but backtrace is false")
    fails({"executables": [hello], "dest": str(tmp_path / "b2"), "backtracer": str(core)},
          f"backtracer {core} is not a program", "set backtracer to the toolchain's")
    fails({"executables": [hello], "dest": str(tmp_path / "b3"), "backtracer": str(tmp_path / "none")},
          "is not a file")
    assert not [p for p in tmp_path.iterdir() if p.name != "bag"]


# ---- multi-executable packages ----------------------------------------------------------------------------

def test_multi_exec_shares_one_lib_without_duplicates_and_reports_bytes_saved(engine, tmp_path):
    built, static = products("multi-exec"), products("multi-exec", "static_stdlib")
    result = run_module("shared_objects", {
        "executables": [built["greeter"]["path"], built["counter"]["path"]],
        "static_sizes": {name: p["size"] for name, p in static.items()},
        "dest": str(tmp_path / "bag"),
    })
    assert not result.get("failed"), result.get("msg")
    manifest = result["manifest"]
    lib = tmp_path / "bag" / "lib"
    assert sorted(os.listdir(lib)) == sorted(manifest["libraries"])
    digests = [sha256(p) for p in lib.iterdir()]
    assert len(digests) == len(set(digests)), "each library once"
    assert sorted(os.listdir(tmp_path / "bag" / "bin")) == ["counter", "greeter"]
    runtime = sum(f["size"] for f in manifest["files"] if f["kind"] in ("executable", "library"))
    assert manifest["bytes_saved_vs_static"] == sum(p["size"] for p in static.values()) - runtime
    assert manifest["bytes_total"] == sum(f["size"] for f in manifest["files"])
    code, output = run_in_host(engine, BOOKWORM, str(tmp_path / "bag"),
                               ["sh", "-c", "/bag/bin/greeter Ops && /bag/bin/counter 2"])
    assert code == 0 and output.splitlines() == ["Hello, Ops! (shared 1.0.0)", "1", "2", "shared 1.0.0"], output


# ---- resolvers, scopes, manifest, SBOM -----------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["http-service", "networking"])
def test_ldd_and_elf_resolvers_make_the_same_bag(bag, fixture):
    by_elf, by_ldd = bag(fixture, "all", "elf")["manifest"], bag(fixture, "all", "ldd")["manifest"]
    assert by_elf["libraries"] == by_ldd["libraries"]
    assert [(f["path"], f["sha256"], f["source"]) for f in by_elf["files"]] == \
        [(f["path"], f["sha256"], f["source"]) for f in by_ldd["files"]]


def test_scope_swift_bags_only_the_toolchain_and_names_what_the_host_must_provide(bag):
    manifest = bag("networking", "swift")["manifest"]
    assert all(name.startswith(("libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime"))
               for name in manifest["libraries"])
    assert {"libcurl.so.4", "libxml2.so.2", "libstdc++.so.6"} <= set(manifest["system_libraries"])


def test_manifest_records_every_file_and_the_sbom_matches(bag):
    result = bag("foundation-service")
    dest, manifest = Path(result["dest"]), result["manifest"]
    assert json.loads(Path(result["manifest_path"]).read_text()) == manifest
    assert set(manifest) >= {"scope", "architecture", "executables", "files", "glibc_required", "glibcxx_required",
                             "interpreter", "launch", "bytes_total", "bytes_saved_vs_static"}
    assert (manifest["scope"], manifest["architecture"], manifest["executables"]) == \
        ("non-system", "x86_64", ["foundation-service"])
    assert manifest["interpreter"] == "/lib64/ld-linux-x86-64.so.2"
    assert manifest["launch"] == {"foundation-service": ["bin/foundation-service"]}
    for item in manifest["files"]:
        assert sha256(dest / item["path"]) == item["sha256"] and (dest / item["path"]).stat().st_size == item["size"]
        assert item["kind"] in ("executable", "library", "resource", "backtracer")
    assert manifest["backtracer"] == "libexec/swift-backtrace"
    assert next(f for f in manifest["files"] if f["kind"] == "backtracer")["path"] == manifest["backtracer"]
    exe = next(f for f in manifest["files"] if f["kind"] == "executable")
    assert exe["source"] == products("foundation-service")["foundation-service"]["path"]
    for program in ("bin/foundation-service", "libexec/swift-backtrace"):
        runpath = subprocess.run(["readelf", "-d", str(dest / program)], capture_output=True, text=True,
                                 check=True).stdout
        assert "(RUNPATH)" in runpath and "[$ORIGIN/../lib]" in runpath and "(RPATH)" not in runpath, program
    sbom = json.loads(Path(result["sbom_path"]).read_text())
    assert sbom["spdxVersion"] == "SPDX-2.3"
    assert {f["fileName"][2:]: next(c["checksumValue"] for c in f["checksums"] if c["algorithm"] == "SHA256")
            for f in sbom["files"]} == {f["path"]: f["sha256"] for f in manifest["files"]}


def test_scope_all_records_debian_packages_of_system_libraries(bag):
    manifest = bag("http-service", "all")["manifest"]
    owners = {os.path.basename(f["path"]): (f["package"], f["package_version"]) for f in manifest["files"]}
    assert owners["libc.so.6"][0].startswith("libc6") and owners["libc.so.6"][1].startswith("2.36")
    assert owners["libstdc++.so.6.0.30"][0].startswith("libstdc++6")
    assert owners["libswiftCore.so"] == (None, None), "the toolchain is not a Debian package"


# ---- idempotence, check mode, diff --------------------------------------------------------------------

def test_second_run_is_unchanged_and_a_damaged_bag_is_rebuilt(tmp_path):
    args = {"executables": [products("hello")["hello"]["path"]], "dest": str(tmp_path / "bag")}
    checked = run_module("shared_objects", args, check_mode=True, diff=True)
    assert checked["changed"] and not (tmp_path / "bag").exists()
    assert "lib/libswiftCore.so" in checked["diff"]["after"]
    first = run_module("shared_objects", args)
    assert first["changed"] and first["manifest"]["files"] == checked["manifest"]["files"]
    mtime = (tmp_path / "bag" / "bin" / "hello").stat().st_mtime_ns
    second = run_module("shared_objects", args)
    assert not second["changed"] and second["manifest"] == first["manifest"]
    assert (tmp_path / "bag" / "bin" / "hello").stat().st_mtime_ns == mtime
    assert not run_module("shared_objects", args, check_mode=True)["changed"]

    (tmp_path / "bag" / "lib" / "libswiftCore.so").write_bytes(b"damaged")
    third = run_module("shared_objects", args, diff=True)
    assert third["changed"] and "lib/libswiftCore.so" in third["diff"]["before"]
    assert sha256(tmp_path / "bag" / "lib" / "libswiftCore.so") == next(
        f["sha256"] for f in third["manifest"]["files"] if f["path"] == "lib/libswiftCore.so")
    assert not [p for p in tmp_path.iterdir() if p.name != "bag"], "no staging directories left behind"
    assert run_module("shared_objects", dict(args, scope="all"))["changed"]


def test_the_same_inputs_give_the_same_bag_bytes_and_a_code_only_change_only_program_files(tmp_path):
    """Without SOURCE_DATE_EPOCH too: the SBOM's time is 0 then, as an image's. A program changed in place changes
    the program, bag.json and the SBOM (both name its checksum), nothing else."""
    program = tmp_path / "src" / "hello"
    program.parent.mkdir()
    shutil.copyfile(products("hello")["hello"]["path"], program)
    program.chmod(0o755)

    def bag(name: str) -> dict:
        result = run_module("shared_objects", {"executables": [str(program)], "dest": str(tmp_path / name)})
        assert not result.get("failed"), result.get("msg")
        return {str(p.relative_to(tmp_path / name)): p.read_bytes() for p in (tmp_path / name).rglob("*")
                if p.is_file()}

    first, again = bag("first"), bag("again")
    assert first == again
    program.write_bytes(program.read_bytes() + b"\0code-only\0")
    changed = bag("changed")
    assert sorted(name for name in changed if changed[name] != first.get(name)) == [
        "bag.json", "bag.spdx.json", "bin/hello"]


# ---- bad inputs -------------------------------------------------------------------------------------------

def fails(args: dict, *needles: str) -> str:
    result = run_module("shared_objects", args)
    assert result.get("failed"), result
    msg = result["msg"]
    assert "Traceback" not in json.dumps(result) and "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_non_elf_input(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    fails({"executables": [str(script)], "dest": str(tmp_path / "bag")}, str(script), "not an ELF file", "a script")
    assert not (tmp_path / "bag").exists()


def test_fully_static_binary_gives_an_empty_lib_and_says_so(tmp_path):
    exe = products("hello", "static_executable")["hello"]["path"]
    result = run_module("shared_objects", {"executables": [exe], "scope": "all", "dest": str(tmp_path / "bag")})
    assert not result.get("failed"), result.get("msg")
    assert any("statically linked" in w and "nothing is bagged" in w for w in result["warnings"])
    assert os.listdir(tmp_path / "bag" / "lib") == [] and result["libraries"] == []
    assert result["manifest"]["launch"] == {"hello": ["bin/hello"]} and result["manifest"]["interpreter"] is None
    assert subprocess.run([str(tmp_path / "bag" / "bin" / "hello")], capture_output=True, text=True,
                          check=True).stdout.strip() == "Hello, world!"


def test_unresolvable_library_lists_each_missing_library_and_who_needs_it(tmp_path):
    (tmp_path / "gone.c").write_text("int gone(void) { return 0; }\n")
    (tmp_path / "prog.c").write_text("int gone(void);\nint main(void) { return gone(); }\n")
    for cmd in (["gcc", "-shared", "-fPIC", "-Wl,-soname,libgone.so.7", "gone.c", "-o", "libgone.so.7"],
                ["gcc", "prog.c", "-L.", "-l:libgone.so.7", "-o", "prog"]):
        subprocess.run(cmd, cwd=tmp_path, check=True)
    (tmp_path / "libgone.so.7").unlink()
    for resolver in ("elf", "ldd"):
        fails({"executables": [str(tmp_path / "prog")], "resolver": resolver, "dest": str(tmp_path / "bag")},
              "cannot find 1 library", "libgone.so.7 (needed by prog)", "extra_libraries")


def test_two_libraries_with_one_soname_from_different_directories(tmp_path):
    core = Path(products("hello")["hello"]["path"])
    other = tmp_path / "other"
    other.mkdir()
    copy = other / "libswift_RegexParser.so"
    toolchain_lib = swift_bin_dir().parent / "lib" / "swift" / "linux"
    shutil.copy(toolchain_lib / "libswift_RegexParser.so", copy)
    # Same SONAME, different bytes: the copy finds its dependencies in the toolchain by absolute RUNPATH.
    subprocess.run(["patchelf", "--set-rpath", str(toolchain_lib), str(copy)], check=True)
    fails({"executables": [str(core)], "extra_libraries": [str(copy)], "dest": str(tmp_path / "bag")},
          "two different files have the SONAME libswift_RegexParser.so", str(copy))


def test_extra_libraries_bring_what_dlopen_would_open(tmp_path):
    exe = products("hello")["hello"]["path"]
    nss = "/lib/x86_64-linux-gnu/libnss_files.so.2"
    result = run_module("shared_objects", {"executables": [exe], "extra_libraries": [nss],
                                           "dest": str(tmp_path / "bag")})
    assert not result.get("failed"), result.get("msg")
    assert "libnss_files.so.2" in result["libraries"], "listed libraries are bagged whatever the scope"
    fails({"executables": [exe], "extra_libraries": [exe], "dest": str(tmp_path / "bag2")}, "not a shared library")


def test_symlink_loop(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    fails({"executables": [str(tmp_path / "a")], "dest": str(tmp_path / "bag")}, "symlink loop", str(tmp_path / "a"))


def test_output_directory_inside_the_input(tmp_path):
    product = products("resources")["resource-reader"]
    bundle = tmp_path / "bundle"
    shutil.copytree(product["resources"][0], bundle)
    fails({"executables": [product["path"]], "resources": [str(bundle)], "dest": str(bundle / "bag")},
          "inside the input", str(bundle))
    assert not (bundle / "bag").exists()
    exe = tmp_path / "out" / "resource-reader"
    exe.parent.mkdir()
    shutil.copy(product["path"], exe)
    fails({"executables": [str(exe)], "dest": str(tmp_path / "out")}, "inside dest")
    assert exe.exists()


def test_dest_that_is_not_a_bag_is_left_alone(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    fails({"executables": [products("hello")["hello"]["path"]], "dest": str(tmp_path)}, "did not write", "keep.txt")
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def embedding_library(tmp_path_factory) -> Path:
    """A shared library built with the Swift runtime linked in (-static-stdlib)."""
    out = tmp_path_factory.mktemp("embed")
    (out / "e.swift").write_text("public func embedded() -> Int { [1, 2, 3].reduce(0, +) }\n")
    proc = subprocess.run([str(swift_bin_dir() / "swiftc"), "-emit-library", "-static-stdlib", "-module-name", "Embed",
                           "-module-cache-path", str(out / "cache"), "e.swift", "-o", "libembed.so",
                           "-Xlinker", "-soname=libembed.so"], cwd=out, capture_output=True, text=True,
                          env=tool_env(), check=False)
    assert proc.returncode == 0, proc.stderr
    return out / "libembed.so"


def test_swift_runtime_present_twice_fails_or_warns(tmp_path, embedding_library):
    args = {"executables": [products("hello")["hello"]["path"]], "extra_libraries": [str(embedding_library)],
            "dest": str(tmp_path / "bag")}
    fails(args, "the Swift runtime would be loaded twice into hello", "libembed.so", "libswiftCore.so",
          "strict_runtime=false")
    assert not (tmp_path / "bag").exists()
    result = run_module("shared_objects", dict(args, strict_runtime=False))
    assert not result.get("failed") and any("loaded twice" in w for w in result["warnings"])
    # Beside a static_stdlib build it is still two runtimes: the program embeds one, the library another.
    static = products("hello", "static_stdlib")["hello"]["path"]
    fails(dict(args, executables=[static], dest=str(tmp_path / "bag2")), "libembed.so", "hello")


def test_ldd_refuses_a_binary_it_would_have_to_run_with_a_foreign_loader(tmp_path):
    (tmp_path / "a.c").write_text("void _start(void) { for (;;) {} }\n")
    subprocess.run([str(swift_bin_dir() / "clang"), "--target=aarch64-linux-gnu", "-fuse-ld=lld", "-nostdlib",
                    "-Wl,--dynamic-linker=/lib/ld-linux-aarch64.so.1", "-Wl,-pie", "-fPIE", "a.c", "-o", "a"],
                   cwd=tmp_path, check=True, capture_output=True)
    fails({"executables": [str(tmp_path / "a")], "resolver": "ldd", "dest": str(tmp_path / "bag")},
          "aarch64", "resolver=elf")
    # The ELF resolver only reads it: nothing to bag, and the architecture is recorded.
    result = run_module("shared_objects", {"executables": [str(tmp_path / "a")], "dest": str(tmp_path / "bag")})
    assert not result.get("failed"), result.get("msg")
    assert result["manifest"]["architecture"] == "aarch64" and result["libraries"] == []
    fails({"executables": [str(tmp_path / "a")], "scope": "all", "dest": str(tmp_path / "bag-all")},
          "/lib/ld-linux-aarch64.so.1 is not on this machine")


def test_resource_symlinks_stay_inside_their_bundle(tmp_path):
    product = products("resources")["resource-reader"]
    bundle = tmp_path / Path(product["resources"][0]).name
    shutil.copytree(product["resources"][0], bundle)
    (bundle / "alias.txt").symlink_to("greeting.txt")
    args = {"executables": [product["path"]], "resources": [str(bundle)], "dest": str(tmp_path / "bag")}
    result = run_module("shared_objects", args)
    assert not result.get("failed"), result.get("msg")
    assert os.readlink(tmp_path / "bag" / "bin" / bundle.name / "alias.txt") == "greeting.txt"

    (bundle / "escape").symlink_to("/etc/hostname")
    fails(dict(args, dest=str(tmp_path / "bag2")), "outside its bundle", "escape")
    (bundle / "escape").unlink()
    (bundle / "loop").symlink_to("loop")
    fails(dict(args, dest=str(tmp_path / "bag3")), "symlink loop")
    assert not (tmp_path / "bag2").exists() and not (tmp_path / "bag3").exists()
