"""Shared test plumbing: the real toolchain, real module runs through ansible, cached Swift builds.

Nothing here is mocked. A missing tool is a test failure with a sentence saying how to provide it,
never a skip.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
# Survives between runs of one checkout, so day-to-day runs reuse builds; a fresh clone starts empty.
BUILD_CACHE = REPO / ".build" / "test-cache"

LINK_MODES = ("static_executable", "static_stdlib", "dynamic")


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


def run_module(name: str, args: dict, *, check_mode: bool = False, diff: bool = False) -> dict:
    """Run swiftlinux.deploy.<name> (or a module given by FQCN) on localhost through ansible itself and return its result.

    Going through `ansible` exercises the argument spec, the collection loader and module_utils
    exactly as a playbook would.
    """
    env = tool_env()
    env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    # The venv's python runs the module, so pyelftools and the docker SDK are importable.
    cmd = ["ansible", "localhost", "-c", "local", "-i", "localhost,",
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
    })
    if result.get("failed"):
        raise AssertionError(f"swift_build of {fixture} ({mode}) failed: {result.get('msg')}")
    return result
