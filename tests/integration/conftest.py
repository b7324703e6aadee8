"""Session fixtures for image tests: Debian's docker-registry on 127.0.0.1, open and with htpasswd auth.

Real registries, started and stopped here; a missing binary is a failure that says how to install it.
"""
from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from support import free_port, require

REGISTRY_USER = "swiftlinux"
REGISTRY_PASSWORD = "s3cret-for-tests"


@dataclass
class RunningRegistry:
    host: str  # 127.0.0.1:PORT
    storage: Path
    username: str | None = None
    password: str | None = None


def _start_registry(workdir: Path, htpasswd: Path | None) -> tuple[subprocess.Popen, str]:
    binary = require("docker-registry", "docker-registry")
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(parents=True)
    auth = (f"auth:\n  htpasswd:\n    realm: swiftlinux-test\n    path: {htpasswd}\n" if htpasswd else "")
    config = workdir / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n"
                      f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}")
    log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - closed with the process below
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except urllib.error.HTTPError:  # 401 from the htpasswd registry: it is up
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    _stop(proc)
    pytest.fail(f"docker-registry did not start on 127.0.0.1:{port}:\n{(workdir / 'registry.log').read_text()}",
                pytrace=False)
    raise AssertionError("unreachable")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.log.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """An open registry on a free 127.0.0.1 port."""
    workdir = tmp_path_factory.mktemp("registry")
    proc, host = _start_registry(workdir, None)
    yield RunningRegistry(host, workdir / "storage")
    _stop(proc)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory):
    """A registry that wants user swiftlinux with a password (htpasswd, bcrypt)."""
    htpasswd_tool = require("htpasswd", "apache2-utils")
    workdir = tmp_path_factory.mktemp("auth-registry")
    htpasswd = workdir / "htpasswd"
    subprocess.run([htpasswd_tool, "-Bbc", str(htpasswd), REGISTRY_USER, REGISTRY_PASSWORD],
                   check=True, capture_output=True)
    proc, host = _start_registry(workdir, htpasswd)
    yield RunningRegistry(host, workdir / "storage", REGISTRY_USER, REGISTRY_PASSWORD)
    _stop(proc)


@pytest.fixture(scope="session")
def docker_client():
    """A client of this machine's Docker engine; a failure that says how to start one when none answers."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"the Docker engine does not answer ({exc}); run `make docker` to start it", pytrace=False)
    yield client
    client.close()
