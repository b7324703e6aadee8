"""Shared test plumbing: the real toolchain, real module runs, cached Swift builds.

Nothing here is mocked. A missing tool is a test failure with a sentence saying how to provide it,
never a skip.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
# Survives between runs of one checkout, so day-to-day runs reuse builds; a fresh clone starts empty.
BUILD_CACHE = REPO / ".build" / "test-cache"

LINK_MODES = ("static_executable", "static_stdlib", "dynamic")
# The executable products of each fixture package.
PRODUCTS = {
    "hello": ["hello"],
    "http-service": ["http-service"],
    "foundation-service": ["foundation-service"],
    "multi-exec": ["greeter", "counter"],
    "resources": ["resource-reader"],
    "networking": ["networking-service"],
    "dep-server": ["dep-server"],
    "worker": ["worker", "name-lookup"],
    "lambda-function": ["lambda-function"],
}
# dep-server's dependency, by a URL on a host that never resolves; builds reach it through a mirror.
GREETING_URL = "https://git.swiftlinux.invalid/greeting.git"
GREETING_VERSION = "1.0.0"
# The one combination that cannot link: libcurl/libxml2 exist only as shared libraries on glibc.
IMPOSSIBLE = {("networking", "static_executable")}


@functools.cache
def swift_bin_dir() -> Path:
    """The toolchain's usr/bin, found the same way the Makefile finds it."""
    found = subprocess.run([str(REPO / "scripts" / "find-swift.sh")], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        pytest.fail(found.stderr.strip() or "Swift toolchain not found", pytrace=False)
    return Path(found.stdout.strip())


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: the toolchain and the venv first on PATH, the repo's ansible.cfg."""
    env = dict(os.environ)
    venv_bin = REPO / ".venv" / "bin"
    env["PATH"] = os.pathsep.join([str(swift_bin_dir()), str(venv_bin), env.get("PATH", "")])
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    return env


COLLECTIONS = REPO / ".build" / "collections"  # ansible.cfg's collections_path; make link puts the repo there
ACTION_PLUGINS = REPO / "plugins" / "action"
# Action plugins that, on the local connection, only call the module's own function in Ansible's process: the module
# file is the same code, so run_module runs it directly (test_release_modules checks that both give one answer).
SAME_CODE_LOCALLY = {"artifact_info"}


def run_module(name: str, args: dict, *, check_mode: bool = False, diff: bool = False,
               wrapper: tuple[str, ...] = (), through_ansible: bool = False) -> dict:
    """Run swiftlinux.deploy.<name> (or a module given by FQCN) on localhost and return its result.

    A module of this collection without an action plugin runs as Ansible runs it on a host: its own file under
    the venv's Python, with its arguments as ANSIBLE_MODULE_ARGS, so the argument spec, check mode, diff and
    module_utils work exactly as in a playbook. That takes about 0.9 s here, where `ansible localhost -m` takes
    about 5 s (the CLI, inventory and plugin loading, the same for every call). Modules of other collections,
    and ours with an action plugin that does more than call the module's code (release), go through `ansible`
    itself, as does any module given `through_ansible` (make bench times Ansible's start-up so). The roles,
    molecule and test_collection run everything through Ansible.
    `wrapper` goes before the command, e.g. nsenter into a network namespace.
    """
    if not through_ansible and "." not in name and (name in SAME_CODE_LOCALLY
                                                    or not (ACTION_PLUGINS / f"{name}.py").exists()):
        return _run_module_file(name, args, check_mode=check_mode, diff=diff, wrapper=wrapper)
    env = tool_env()
    env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    # The venv's python runs the module, so pyelftools and the docker SDK are importable.
    cmd = [*wrapper, "ansible", "localhost", "-c", "local", "-i", "localhost,",
           "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
           "-m", name if "." in name else f"swiftlinux.deploy.{name}"]
    if args:
        cmd += ["-a", json.dumps(args)]
    if check_mode:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"ansible printed no JSON (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


def _run_module_file(name: str, args: dict, *, check_mode: bool, diff: bool, wrapper: tuple[str, ...]) -> dict:
    """One module of this collection run from its file, as Ansible's module runner would run it."""
    if not (COLLECTIONS / "ansible_collections" / "swiftlinux" / "deploy").exists():
        pytest.fail(f"{COLLECTIONS}/ansible_collections/swiftlinux/deploy is missing; run 'make link'", pytrace=False)
    env = tool_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(COLLECTIONS), env.get("PYTHONPATH")]))
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}}
    cmd = [*wrapper, sys.executable, "-m", f"ansible_collections.swiftlinux.deploy.plugins.modules.{name}"]
    proc = subprocess.run(cmd, input=json.dumps(payload), capture_output=True, text=True, env=env, cwd=REPO,
                          check=False)
    try:
        result = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        # What Ansible reports for a module that dies without its JSON (an unhandled exception, say): the tests'
        # "no traceback" checks see it in msg, exception and module_stderr alike.
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"failed": True, "changed": False, "msg": f"Module failed: {last}", "rc": proc.returncode,
                "exception": proc.stderr, "module_stdout": proc.stdout, "module_stderr": proc.stderr}
    result.setdefault("changed", False)
    # ansible-core 2.19 modules send warnings as structured summaries; Ansible hands the task their messages.
    warnings = [w.get("event", {}).get("msg", w) if isinstance(w, dict) else w for w in result.pop("warnings", ())]
    if warnings:
        result["warnings"] = warnings
    if proc.returncode != 0 and not result.get("failed"):
        result.update(failed=True, rc=proc.returncode)
    return result


def _git(*args: str, cwd: Path) -> str:
    # Fixed names and dates make the commit id the same on every run, so builds keep their fingerprint.
    env = dict(os.environ, GIT_AUTHOR_NAME="swiftlinux tests", GIT_AUTHOR_EMAIL="tests@swiftlinux.invalid",
               GIT_COMMITTER_NAME="swiftlinux tests", GIT_COMMITTER_EMAIL="tests@swiftlinux.invalid",
               GIT_AUTHOR_DATE="2024-01-01T00:00:00Z", GIT_COMMITTER_DATE="2024-01-01T00:00:00Z",
               GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"git {' '.join(args)} failed: {done.stderr.strip()}; install git (apt-get install git)",
                    pytrace=False)
    return done.stdout.strip()


@functools.cache
def greeting_repository() -> Path:
    """tests/fixtures/dep-server-greeting as a git repository tagged GREETING_VERSION, once per session.

    It lives at a fixed place in BUILD_CACHE, so the mirror path, and with it the build fingerprint, stays
    the same from run to run.
    """
    import shutil

    repo = BUILD_CACHE / "git" / "greeting"
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(FIXTURES / "dep-server-greeting", repo, ignore=shutil.ignore_patterns(".build", ".swiftpm"))
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "greeting " + GREETING_VERSION, cwd=repo)
    _git("tag", GREETING_VERSION, cwd=repo)
    return repo


def fixture_args(fixture: str) -> dict:
    """Module arguments a fixture needs beyond package_path: dep-server gets its dependency through a mirror."""
    if fixture == "dep-server":
        return {"mirrors": {GREETING_URL: str(greeting_repository())}}
    return {}


def swift_build_fixture(fixture: str, mode: str) -> Path:
    """The directory holding a fixture's executables built in `mode` (resources and debug files beside)."""
    return Path(built_fixture(fixture, mode)["manifest"]).parent


@functools.cache
def built_fixture(fixture: str, mode: str) -> dict:
    """Build a fixture package in a link mode with the swift_build module; its result, once per session.

    Output goes to BUILD_CACHE, so a later run with unchanged sources reuses it (changed=false).
    """
    result = run_module("swift_build", {
        "package_path": str(FIXTURES / fixture),
        "link_mode": mode,
        "dest": str(BUILD_CACHE / "artifacts" / fixture / mode),
        **fixture_args(fixture),
    })
    if result.get("failed"):
        raise AssertionError(f"swift_build of {fixture} ({mode}) failed: {result.get('msg')}")
    return result


# lambda-function's static_stdlib build with its opt-in hypotf pin (Sources/GlibcCompat), the static_stdlib build made
# here that fits Lambda's glibc 2.34 (docs/lambda.md); a variant of its own beside the fixture's link modes.
LAMBDA_PINNED = "static_stdlib-glibc-2.34"


@functools.cache
def lambda_function_build(mode: str) -> Path:
    """lambda-function built in a link mode, or as LAMBDA_PINNED (static_stdlib with -DSWIFTLINUX_GLIBC_2_34 and a
    scratch folder of its own, so it never rebuilds the plain static_stdlib scratch)."""
    if mode != LAMBDA_PINNED:
        return swift_build_fixture("lambda-function", mode)
    dest = BUILD_CACHE / "artifacts" / "lambda-function" / mode
    result = run_module("swift_build", {
        "package_path": str(FIXTURES / "lambda-function"), "link_mode": "static_stdlib", "dest": str(dest),
        "build_args": ["-Xcc", "-DSWIFTLINUX_GLIBC_2_34"],
        "scratch_path": str(BUILD_CACHE / "scratch" / f"lambda-function-{mode}"),
    })
    if result.get("failed"):
        raise AssertionError(f"swift_build of lambda-function ({mode}) failed: {result.get('msg')}")
    return dest


# ---- systemd test hosts ---------------------------------------------------------------------

SYSTEMD_HOST = dict(  # systemd as PID 1 without privileged mode; see .config/molecule/config.yml
    command="/lib/systemd/systemd", network_mode="none", cap_add=["SYS_ADMIN"], cgroupns="host",
    volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
    labels={"swiftlinux.test": "pytest"}, detach=True,
)


def start_systemd_host(name: str, suite: str = "bookworm", tmpfs: dict | None = None, network_mode: str = "none"):
    """Boot a test host container and wait until systemd reports running; the caller removes it. With network_mode
    host it shares this machine's loopback (to reach a registry on 127.0.0.1; give each host its own ports)."""
    import docker  # the SDK is in the venv; imported here so plain unit tests do not need an engine

    client = docker.from_env()
    for old in client.containers.list(all=True, filters={"name": f"^{name}$"}):
        old.remove(force=True)
    mounts = {"/run": "", "/run/lock": "", "/tmp": "", **(tmpfs or {})}
    container = client.containers.run(f"swiftlinux-testhost:{suite}", name=name, tmpfs=mounts,
                                      **{**SYSTEMD_HOST, "network_mode": network_mode})
    deadline = time.monotonic() + 90
    while True:  # the bus needs a moment before systemctl can even ask
        state = container.exec_run("systemctl is-system-running --wait").output.decode().strip()
        if state in ("running", "degraded") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert state in ("running", "degraded"), f"{name} did not boot: {state}"
    return container


@dataclasses.dataclass
class PlayResult:
    rc: int
    output: str
    failures: list[str]  # the msg of every failed task result, in order
    changed: int  # the host's changed count from the recap
    results: dict = dataclasses.field(default_factory=dict)  # task name -> the host's last result for it
    report: dict = dataclasses.field(default_factory=dict)  # the json callback's whole report (stats per host, ...)


def host_connection(host: str) -> dict:
    """How ansible reaches a test host: "localhost" is this machine (a Docker host itself), any other name a
    docker-connected test host."""
    if host == "localhost":
        return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    return {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"}


def run_playbook(playbook: Path, host: str, extra_vars: dict, *, check: bool = False,
                 timeout: int = 600, inventory: dict | None = None) -> PlayResult:
    """Run a playbook against one host (see host_connection), or against a whole `inventory` whose summary
    (changed, results) is reported for `host`."""
    path = BUILD_CACHE / f"inventory-{host}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(inventory or {"all": {"hosts": {host: host_connection(host)}}}))
    env = tool_env()
    env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    cmd = ["ansible-playbook", "-i", str(path), str(playbook), "-e", json.dumps(extra_vars)]
    if check:
        cmd += ["--check", "--diff"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:  # ansible stopped before the play, e.g. on bad arguments
        return PlayResult(proc.returncode, proc.stdout + proc.stderr, [proc.stderr[-2000:]], -1)
    failures = [result.get("msg", "") for play in report["plays"] for task in play["tasks"]
                for result in task["hosts"].values() if result.get("failed")]
    changed = report.get("stats", {}).get(host, {}).get("changed", -1)
    results = {task["task"]["name"]: task["hosts"][host] for play in report["plays"] for task in play["tasks"]
               if host in task["hosts"]}
    return PlayResult(proc.returncode, proc.stdout + proc.stderr, failures, changed, results, report)


def remove_tags(client, *prefixes: str) -> None:
    """Remove every image tag that starts with one of the prefixes, or names one after a registry host."""
    import docker

    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(prefixes) or any("/" + prefix in tag for prefix in prefixes):
                try:
                    client.images.remove(tag, force=True)
                except docker.errors.APIError:
                    pass  # already gone with another tag of the same image


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require(tool: str, package: str) -> str:
    """The path of a tool the test needs; a clear failure (never a skip) naming the Debian package when it is missing."""
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} is missing; install it with 'apt-get install -y {package}' (make bootstrap does this)",
                    pytrace=False)
    return path
