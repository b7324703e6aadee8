"""lambda_package on real builds: the zip, its quotas and refusals, and the packaged `bootstrap` run against a local
Lambda Runtime API (tests/lambda_runtime.py) exactly as Lambda starts it: unzipped into a folder of its own, with
AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>.

Builds come from tests/support.py (built once, shared); no Docker engine is needed.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lambda_runtime import API, RuntimeAPI, function_env, rss_kib, unzip_like_lambda
from support import (
    FIXTURES, LAMBDA_PINNED, REPO, lambda_function_build, run_module, run_playbook, swift_build_fixture,
)

pytestmark = pytest.mark.slow

FUNCTION = "fixture-fn"
# LAMBDA_PINNED is static_stdlib with the fixture's opt-in hypotf pin, the static_stdlib build here that fits glibc 2.34.
RUNNABLE_MODES = ("static_executable", LAMBDA_PINNED)


def package(build: Path, dest: Path, *, check_mode: bool = False, **args) -> dict:
    return run_module("lambda_package", {"build": str(build), "function_name": FUNCTION, "dest": str(dest), **args},
                      check_mode=check_mode)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """The lambda-function fixture packaged once per static mode, and unzipped as Lambda would (a task root)."""
    cache = {}

    def get(mode: str):
        if mode not in cache:
            work = tmp_path_factory.mktemp(f"packaged-{mode}")
            result = package(lambda_function_build(mode), work / "package", image=True)
            assert not result.get("failed"), result.get("msg")
            task_root = work / "task"
            task_root.mkdir()
            unzip_like_lambda(Path(result["zip"]), task_root)
            cache[mode] = result, task_root
        return cache[mode]
    return get


@contextlib.contextmanager
def running(task_root: Path, api: RuntimeAPI, program: str = "bootstrap", **env: str):
    """The bootstrap started as Lambda starts a custom runtime; killed afterwards."""
    process = subprocess.Popen([str(task_root / program)], cwd=task_root, env=function_env(api, task_root, **env),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield process
    finally:
        process.kill()
        process.communicate(timeout=10)


def post(api: RuntimeAPI, path: str, body: bytes) -> int:
    request = urllib.request.Request(f"http://{api.address}{path}", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


# ---- the zip -----------------------------------------------------------------------------------------------------

def test_zip_holds_bootstrap_only_and_keeps_the_debug_file_aside(packaged):
    result, task_root = packaged("static_executable")
    build = swift_build_fixture("lambda-function", "static_executable")
    manifest = json.loads((build / "swift_build.json").read_text())["products"]["lambda-function"]
    zip_path = Path(result["zip"])
    assert zip_path.name == f"{FUNCTION}.zip" and sha256(zip_path) == result["sha256"]
    assert result["files"] == ["bootstrap"]
    assert (result["link_mode"], result["architecture"], result["runtime"], result["handler"]) == (
        "static_executable", "x86_64", "provided.al2023", "bootstrap")
    # The program travels byte for byte as bootstrap; its debug file stays beside the zip, not in it.
    assert (task_root / "bootstrap").read_bytes() == (build / "lambda-function").read_bytes()
    assert stat.S_IMODE((task_root / "bootstrap").stat().st_mode) == 0o755
    assert Path(result["debug_file"]).read_bytes() == (build / "lambda-function.debug").read_bytes()
    sizes = result["sizes"]
    assert sizes == {"unstripped": manifest["unstripped_size"], "stripped": manifest["size"],
                     "debug": manifest["debug_size"], "unzipped": manifest["size"], "zipped": zip_path.stat().st_size}
    assert sizes["unstripped"] > sizes["stripped"] > sizes["zipped"]
    recorded = json.loads((zip_path.parent / "lambda_package.json").read_text())
    assert recorded["sha256"] == result["sha256"] and recorded["sizes"] == sizes


def test_two_runs_give_the_same_sha256_and_an_unchanged_package_is_left_alone(packaged, tmp_path):
    first = packaged("static_executable")[0]
    build = swift_build_fixture("lambda-function", "static_executable")
    again = package(build, tmp_path / "again", image=True)
    assert again["changed"] and again["sha256"] == first["sha256"]
    assert again["image"]["digest"] == first["image"]["digest"]
    mtime = os.stat(again["zip"]).st_mtime_ns
    rerun = package(build, tmp_path / "again", image=True)
    assert not rerun["changed"] and rerun["sha256"] == first["sha256"]
    assert os.stat(again["zip"]).st_mtime_ns == mtime, "an unchanged package is not rewritten"


def test_check_mode_reports_the_package_and_writes_nothing(tmp_path):
    result = package(swift_build_fixture("lambda-function", "static_executable"), tmp_path / "out" / "pkg",
                     check_mode=True)
    assert result["changed"] and len(result["sha256"]) == 64
    assert list(tmp_path.iterdir()) == []


def test_an_unstripped_build_is_stripped_with_the_debug_file_aside(tmp_path):
    build = tmp_path / "build"
    built = run_module("swift_build", {"package_path": str(FIXTURES / "lambda-function"), "link_mode":
                                       "static_executable", "strip": False, "dest": str(build)})
    assert not built.get("failed"), built.get("msg")
    result = package(build, tmp_path / "pkg")
    sizes = result["sizes"]
    assert sizes["unstripped"] == (build / "lambda-function").stat().st_size > sizes["stripped"] + sizes["debug"] / 2
    task_root = tmp_path / "task"
    unzip_like_lambda(Path(result["zip"]), task_root)
    assert (task_root / "bootstrap").stat().st_size == sizes["stripped"] == sizes["unzipped"]
    assert Path(result["debug_file"]).name == "lambda-function.debug"
    sections = subprocess.run(["readelf", "--wide", "--sections", str(task_root / "bootstrap")],
                              capture_output=True, text=True, check=True).stdout
    assert ".symtab" not in sections and ".gnu_debuglink" in sections
    assert ".debug_info" in subprocess.run(["readelf", "--wide", "--sections", result["debug_file"]],
                                           capture_output=True, text=True, check=True).stdout
    not_stripped = package(build, tmp_path / "raw", strip=False)
    assert not_stripped["sizes"]["stripped"] == sizes["unstripped"] and not_stripped["debug_file"] is None


def test_resource_bundles_travel_beside_bootstrap_with_their_links(tmp_path):
    """The resources fixture reads its bundle through Bundle.module, which looks beside the program: run it unzipped."""
    build = tmp_path / "build"
    shutil.copytree(swift_build_fixture("resources", "static_executable"), build, symlinks=True)
    bundle = build / "resources_resource-reader.resources"
    os.symlink("greeting.txt", bundle / "hello.txt")
    result = package(build, tmp_path / "pkg")
    assert result["files"] == ["bootstrap", "resources_resource-reader.resources/",
                               "resources_resource-reader.resources/config.json",
                               "resources_resource-reader.resources/greeting.txt",
                               "resources_resource-reader.resources/hello.txt"]
    task_root = tmp_path / "task"
    unzip_like_lambda(Path(result["zip"]), task_root)
    link = task_root / "resources_resource-reader.resources" / "hello.txt"
    assert link.is_symlink() and os.readlink(link) == "greeting.txt"
    ran = subprocess.run([str(task_root / "bootstrap")], cwd=task_root, capture_output=True, text=True, timeout=60,
                         check=False)
    assert ran.returncode == 0, ran.stderr
    assert "message:" in ran.stdout


# ---- the packaged bootstrap against the local Runtime API ----------------------------------------------------------

@pytest.mark.parametrize("mode", RUNNABLE_MODES)
def test_packaged_bootstrap_answers_invocations_and_errors(packaged, mode):
    task_root = packaged(mode)[1]
    with RuntimeAPI(function_name=FUNCTION) as api, running(task_root, api) as process:
        answered = api.invoke({"order": 42, "note": "tr\u00e8s \"quoted\""})
        assert answered.outcome == "response", answered.error
        reply = answered.json()
        assert reply["event"] == {"order": 42, "note": "tr\u00e8s \"quoted\""}
        assert reply["requestId"] == answered.request_id
        assert reply["functionArn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
        assert reply["deadlineMs"] == answered.deadline_ms and reply["traceId"] == answered.trace_id

        failed = api.invoke({"action": "fixture:error"})
        assert failed.outcome == "error" and failed.error_type == "Fixture.HandlerError"
        assert failed.error == {"errorMessage": "the event asked for an error", "errorType": "Fixture.HandlerError"}
        assert api.statuses("POST", f"/invocation/{failed.request_id}/error") == [202]

        # An answered id and an unknown one are refused, as Lambda refuses them.
        assert post(api, f"{API}/invocation/{answered.request_id}/response", b"{}") == 400
        assert post(api, f"{API}/invocation/no-such-id/response", b"{}") == 400

        # A response over 6 MiB is refused with 413; the invocation fails and the function lives on.
        oversized = api.invoke({"action": "fixture:oversize:%d" % (6 * 1024 * 1024 + 1)})
        assert api.statuses("POST", f"/invocation/{oversized.request_id}/response") == [413]
        assert oversized.outcome == "error" and oversized.error_type == "Function.ResponseSizeTooLarge"
        at_limit = api.invoke({"action": "fixture:oversize:%d" % (6 * 1024 * 1024)})
        assert at_limit.outcome == "response" and len(at_limit.body) == 6 * 1024 * 1024
        assert api.invoke({"after": "oversize"}).json()["event"] == {"after": "oversize"}
        assert process.poll() is None
    assert not api.init_errors


def test_an_init_failure_goes_through_the_init_error_endpoint(packaged):
    task_root = packaged("static_executable")[1]
    with RuntimeAPI(function_name=FUNCTION) as api, \
            running(task_root, api, FIXTURE_INIT_ERROR="config missing: \"DB_URL\"") as process:
        assert process.wait(timeout=10) == 1
        assert api.init_errors == [{"header": "Fixture.InitError",
                                    "body": {"errorMessage": "config missing: \"DB_URL\"",
                                             "errorType": "Fixture.InitError"}}]
        assert api.statuses("POST", "/init/error") == [202] and api.next_polls == []


@pytest.mark.parametrize("mode", RUNNABLE_MODES)
def test_the_process_survives_a_thousand_invocations_without_growing(packaged, mode):
    task_root = packaged(mode)[1]
    with RuntimeAPI(function_name=FUNCTION) as api, running(task_root, api) as process:
        for index in range(200):  # warm up: buffers reach their working size
            api.invoke({"i": index})
        before = rss_kib(process.pid)
        for index in range(1000):
            invocation = api.invoke({"i": index, "pad": "x" * (index % 700)})
            assert invocation.outcome == "response" and invocation.json()["event"]["i"] == index
        after = rss_kib(process.pid)
        assert process.poll() is None
    # 64 KiB over 1000 invocations would be a leak of 64 bytes each; a glibc setenv per invocation leaks about 140.
    assert after - before <= 64, f"RSS grew from {before} KiB to {after} KiB over 1000 invocations"


# ---- the container-image route -------------------------------------------------------------------------------------

def test_image_archive_has_the_bootstrap_as_its_entry_point(packaged, tmp_path):
    result, task_root = packaged("static_executable")
    image = result["image"]
    assert image["reference"] == f"lambda/{FUNCTION}:latest" and image["entrypoint"] == ["/var/runtime/bootstrap"]
    info = run_module("image_archive_info", {"path": image["archive"]})
    assert not info.get("failed"), info.get("msg")
    assert info["image_id"] == image["image_id"] and info["repo_tags"] == [image["reference"]]
    assert (info["entrypoint"], info["architecture"], info["os"], info["command"]) == (
        ["/var/runtime/bootstrap"], "amd64", "linux", [])
    with tarfile.open(image["archive"]) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))[0]
        config = json.load(archive.extractfile(manifest["Config"]))["config"]
        assert config["WorkingDir"] == "/var/task" and "LAMBDA_TASK_ROOT=/var/task" in config["Env"]
        layer = archive.extractfile(manifest["Layers"][0]).read()
    root = tmp_path / "rootfs"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as files:
        members = {m.name.rstrip("/"): m for m in files.getmembers()}
        assert stat.S_IMODE(members["var/runtime/bootstrap"].mode) == 0o755
        assert members["tmp"].mode == 0o1777 and members["var/task"].isdir()
        assert {m.uid for m in members.values()} == {0}
        files.extractall(root, filter="tar")
    assert (root / "var/runtime/bootstrap").read_bytes() == (task_root / "bootstrap").read_bytes()
    assert image["size"] == len(gzip.decompress(layer))
    # The entry point is the whole runtime: started alone, it serves invocations.
    with RuntimeAPI(function_name=FUNCTION) as api, running(root / "var" / "runtime", api):
        assert api.invoke({"from": "image"}).json()["event"] == {"from": "image"}


# ---- refusals: one sentence each, nothing written -------------------------------------------------------------------

def _copy_of_build(tmp_path: Path) -> Path:
    build = tmp_path / "work" / "copied-build"
    shutil.copytree(lambda_function_build("static_executable"), build, symlinks=True)
    return build


def _copy_with_a_changed_product(tmp_path: Path) -> Path:
    build = _copy_of_build(tmp_path)
    with open(build / "lambda-function", "ab") as product:
        product.write(b"\0")
    return build


def _copy_with_link_out(tmp_path: Path) -> Path:
    build = tmp_path / "linked-build"
    shutil.copytree(swift_build_fixture("resources", "static_executable"), build, symlinks=True)
    os.symlink("/etc/passwd", build / "resources_resource-reader.resources" / "passwd")
    return build


BAD_INPUTS = {
    "dynamic-build": (lambda tmp: swift_build_fixture("lambda-function", "dynamic"), {},
                      r"is a dynamic build: it needs the Swift runtime's shared libraries, which Lambda's "
                      r"provided.al2023 runtime does not have; build it with swift_build link_mode static_executable "
                      r"\(needs only the kernel\) or static_stdlib \(needs glibc 2.34 or older\)$"),
    "unzipped-quota": (lambda tmp: swift_build_fixture("lambda-function", "static_executable"),
                       {"unzipped_limit": 1000000},
                       r"^the package of fixture-fn unzipped is \d+\.\d MB \([\d,]+ bytes\), over Lambda's limit of "
                       r"1.0 MB \(1,000,000 bytes\); try: rebuild with swift_build optimize_size=true .*; or ship it "
                       r"as a container image \(image=true\), which may hold 10 GB$"),
    "zipped-quota": (lambda tmp: swift_build_fixture("lambda-function", "static_executable"),
                     {"zipped_limit": 1000000},
                     r"^the zip of fixture-fn is \d+\.\d MB \([\d,]+ bytes\), over Lambda's limit of 1.0 MB "
                     r"\(1,000,000 bytes\); try: upload it through S3, where only the unzipped limit applies .*"
                     r"optimize_size=true"),
    "missing-product": (lambda tmp: swift_build_fixture("lambda-function", "static_executable"),
                        {"product": "orders"},
                        r"^the build .* has no product orders; its products are lambda-function, so set product to "
                        r"one of them$"),
    "function-name": (lambda tmp: swift_build_fixture("lambda-function", "static_executable"),
                      {"function_name": "orders api"},
                      r"^function_name 'orders api' is not a name Lambda accepts; use 1 to 64 letters, digits, '-' "
                      r"and '_', for example orders-api$"),
    "bundle-link-out": (_copy_with_link_out, {},
                        r"^resource bundle resources_resource-reader.resources: symbolic link passwd points at the "
                        r"absolute path /etc/passwd, which means another file on every host; make it a relative link "
                        r"inside the artifact$"),
    "dest-inside-build": (_copy_of_build, {"dest": "inside"},
                          r"^dest .*/copied-build/inside is or lies inside the build .*/copied-build, which swift_build "
                          r"owns; choose a directory outside it for the package$"),
    "changed-product": (_copy_with_a_changed_product, {},
                        r"^.*/copied-build/lambda-function changed since swift_build wrote it \(its sha256 differs from "
                        r"swift_build.json\); rebuild it instead of editing it$"),
    "glibc-too-new": (lambda tmp: swift_build_fixture("lambda-function", "static_stdlib"), {},
                      r"lambda-function is a static_stdlib build that needs GLIBC_2.35 \(from libm.so.6: hypotf\), "
                      r"but Lambda's provided.al2023 runtime has glibc 2.34 and GLIBCXX_3.4.29; build it with "
                      r"link_mode static_executable \(it then needs only the kernel\), build static_stdlib on a system "
                      r"with glibc 2.34 or older \(Amazon Linux 2023, RHEL 9, Amazon Linux 2\), or bind those glibc "
                      r"functions to their older versions with a C shim \(docs/lambda.md\)$"),
    "glibcxx-too-new": (lambda tmp: swift_build_fixture("resources", "static_stdlib"), {},
                        r"resource-reader is a static_stdlib build that needs GLIBC_2.35 \(from libm.so.6: hypot, "
                        r"hypotf\) and GLIBCXX_3.4.30 \(from libstdc\+\+.so.6: _ZNSt18condition_variable4wait.*\), but "
                        r"Lambda's provided.al2023 runtime has glibc 2.34 and GLIBCXX_3.4.29; build it with link_mode "
                        r"static_executable \(it then needs only the kernel\) or build static_stdlib on a system with "
                        r"glibc 2.34 or older \(Amazon Linux 2023, RHEL 9, Amazon Linux 2\)$"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_sentence_and_nothing_is_written(tmp_path, case):
    make_build, shared_args, message = BAD_INPUTS[case]
    args = dict(shared_args)
    work = tmp_path / "work"
    work.mkdir()
    build = make_build(tmp_path)
    before = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    dest = build / args.pop("dest") if "dest" in args else work / "out" / "pkg"
    result = package(build, dest, image=True, **args)
    assert result.get("failed"), result
    assert re.search(message, result["msg"]), result["msg"]
    assert "Traceback" not in json.dumps(result) and "\n" not in result["msg"]
    after = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    assert after == before, "nothing written: not dest, not its parent, no staging left over"


def elf_of(build: Path, product: str) -> dict:
    return json.loads((build / "swift_build.json").read_text())["products"][product]["elf"]


def test_the_hypotf_pin_brings_a_static_stdlib_build_down_to_glibc_2_34(tmp_path):
    """The refusal is real (this host's libm binds hypotf@GLIBC_2.35), and the pin documented in docs/lambda.md lifts
    it without changing anything else the program needs."""
    plain = elf_of(swift_build_fixture("lambda-function", "static_stdlib"), "lambda-function")
    pinned = elf_of(lambda_function_build(LAMBDA_PINNED), "lambda-function")
    assert plain["glibc_required"] == "2.35" and "GLIBC_2.35" in plain["version_needs"]["libm.so.6"]
    assert pinned["glibc_required"] == "2.34" and "GLIBC_2.35" not in pinned["version_needs"]["libm.so.6"]
    assert pinned["needed"] == plain["needed"] and pinned["glibcxx_required"] == "3.4.29"
    result = package(lambda_function_build(LAMBDA_PINNED), tmp_path / "pkg")
    assert result["link_mode"] == "static_stdlib" and result["glibc_required"] == "2.34"


def test_a_dest_holding_user_files_is_left_alone(tmp_path):
    dest = tmp_path / "pkg"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    result = package(swift_build_fixture("lambda-function", "static_executable"), dest)
    assert result.get("failed") and "did not write (notes.txt)" in result["msg"]
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


# ---- the role ------------------------------------------------------------------------------------------------------

def test_role_builds_and_packages_in_one_play(tmp_path):
    play = run_playbook(REPO / "tests" / "integration" / "playbooks" / "lambda.yml", "localhost", {
        "lambda_package_path": str(FIXTURES / "lambda-function"),
        "lambda_function_name": "role-fn",
        "lambda_work_dir": str(tmp_path),
        "lambda_image": True,
    })
    assert play.rc == 0, play.failures or play.output[-3000:]
    built = play.results["Show what the role recorded"]["lambda_built"]
    assert built["zip"] == str(tmp_path / "package" / "role-fn.zip") and Path(built["zip"]).is_file()
    assert (built["link_mode"], built["architecture"], built["handler"]) == ("static_executable", "x86_64",
                                                                             "bootstrap")
    assert built["image"]["entrypoint"] == ["/var/runtime/bootstrap"]
    # The same sources give the same zip as the shared build of the same fixture.
    shared = package(swift_build_fixture("lambda-function", "static_executable"), tmp_path / "shared")
    assert built["sha256"] == shared["sha256"]


def test_role_refuses_a_dynamic_link_mode_before_building(tmp_path):
    play = run_playbook(REPO / "tests" / "integration" / "playbooks" / "lambda.yml", "localhost", {
        "lambda_package_path": str(FIXTURES / "lambda-function"),
        "lambda_function_name": "role-fn",
        "lambda_work_dir": str(tmp_path),
        "lambda_link_mode": "dynamic",
    })
    assert play.rc != 0
    assert "lambda_link_mode" in play.output and "static_executable" in play.output
    assert list(tmp_path.iterdir()) == []
