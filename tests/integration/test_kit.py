"""What users install and reuse: the execution-environment declarations, and the molecule kit's test-host role.

The kit's example role runs through molecule in `make kit` (scripts/kit-molecule.sh); these tests cover the
declarations ansible-builder reads and the one-line refusals of `ansible-playbook swiftlinux.deploy.testhost`.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO, tool_env

CACHED_SUITE = "bookworm"  # make test-hosts builds swiftlinux-testhost:bookworm before the tests run


def _testhost(tmp_path: Path, extra_vars: dict, **env_changes: str) -> tuple[subprocess.CompletedProcess, list]:
    """Run the kit's playbook from the collection and return the run and the results of its failed tasks."""
    env = tool_env()
    env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), **env_changes)
    run = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "swiftlinux.deploy.testhost",
                          "-e", json.dumps(extra_vars)], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=False)
    report = json.loads(run.stdout)
    failed = [result for play in report["plays"] for task in play["tasks"]
              for result in task["hosts"].values() if result.get("failed")]
    return run, failed


def _one_line_refusal(run: subprocess.CompletedProcess, failed: list) -> str:
    assert run.returncode != 0, run.stdout
    assert len(failed) == 1, failed
    message = failed[0]["msg"]
    assert "\n" not in message.strip(), message
    return message


def test_execution_environment_context_names_the_declared_dependencies(tmp_path):
    """ansible-builder renders a context for an EE holding the collection, and that context's own introspection step
    (what the image build runs after installing the collections) names every declared Python and system dependency."""
    env = tool_env()
    builder = Path(sys.executable).parent / "ansible-builder"
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO)],
                   check=True, capture_output=True, env=env)
    tarball = next(tmp_path.glob("swiftlinux-deploy-*.tar.gz"))
    assert "meta/execution-environment.yml" in subprocess.run(["tar", "-tzf", str(tarball)], capture_output=True,
                                                              text=True, check=True).stdout.split()
    (tmp_path / "execution-environment.yml").write_text(
        "version: 3\n"
        "images:\n  base_image:\n    name: localhost/ee-base:latest\n"  # never pulled: only the context is made
        f"dependencies:\n  galaxy:\n    collections:\n      - name: {tarball.name}\n        type: file\n"
        "  ansible_core:\n    package_pip: ansible-core\n  ansible_runner:\n    package_pip: ansible-runner\n"
        f"additional_build_files:\n  - src: {tarball.name}\n    dest: .\n")
    subprocess.run([str(builder), "create", "--context", "context", "--output-filename", "Containerfile"],
                   cwd=tmp_path, check=True, capture_output=True, env=env)
    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text()
    assert "introspect.py introspect" in containerfile and "collection install" in containerfile
    assert tarball.name in (context / "_build" / "requirements.yml").read_text()
    assert (context / "_build" / tarball.name).is_file()

    # The galaxy stage, then the builder stage's introspection, exactly as the Containerfile runs them.
    collections = tmp_path / "usr-share-ansible-collections"
    subprocess.run(["ansible-galaxy", "collection", "install", "--force", "--no-deps", "-r", "requirements.yml",
                    "-p", str(collections)], cwd=context / "_build", check=True, capture_output=True,
                   env={**env, "ANSIBLE_COLLECTIONS_PATH": str(collections)})
    pip, bindep = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    subprocess.run([sys.executable, str(context / "_build" / "scripts" / "introspect.py"), "introspect",
                    f"--write-pip={pip}", f"--write-bindep={bindep}", str(collections)],
                   check=True, capture_output=True, text=True)
    python_deps = {line.split()[0] for line in pip.read_text().splitlines() if "swiftlinux.deploy" in line}
    system_deps = {line.split()[0] for line in bindep.read_text().splitlines() if "swiftlinux.deploy" in line}
    assert python_deps == {"pyelftools>=0.33", "requests", "zstandard>=0.25.0", "matplotlib>=3.10"}
    assert system_deps == {"patchelf", "binutils", "libc-bin", "glibc-common"}


def test_the_dev_pins_stay_out_of_the_tarball(tmp_path):
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO)],
                   check=True, capture_output=True, env=tool_env())
    names = subprocess.run(["tar", "-tzf", str(next(tmp_path.glob("*.tar.gz")))], capture_output=True, text=True,
                           check=True).stdout.split()
    assert "requirements.txt" not in names and "requirements.in" not in names
    assert {"meta/ee-requirements.txt", "meta/ee-bindep.txt", "roles/testhost/tasks/main.yml",
            "playbooks/testhost.yml"} <= set(names)


def test_testhost_refuses_an_unknown_suite_in_one_line(tmp_path):
    run, failed = _testhost(tmp_path, {"testhost_suites": [CACHED_SUITE, "buster"]})
    message = _one_line_refusal(run, failed)
    assert message.startswith('unknown Debian suite "buster"') and "trixie, bookworm, bullseye" in message


def test_testhost_without_a_docker_engine_says_so_in_one_line(tmp_path):
    # A unix socket nobody listens on: the address exists, the engine does not answer.
    closed = tmp_path / "closed.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(closed))
    run, failed = _testhost(tmp_path, {"testhost_suites": [CACHED_SUITE]}, DOCKER_HOST=f"unix://{closed}")
    message = _one_line_refusal(run, failed)
    assert message.startswith(f"no Docker engine answers at unix://{closed};") and "DOCKER_HOST" in message


def _path_without_debootstrap(tmp_path: Path) -> str:
    """PATH with the venv and docker but no debootstrap (Debian keeps it in /usr/sbin)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = subprocess.run(["bash", "-c", "command -v docker"], capture_output=True, text=True, check=True)
    (bin_dir / "docker").symlink_to(docker.stdout.strip())
    path = os.pathsep.join([str(REPO / ".venv" / "bin"), str(bin_dir), "/usr/bin", "/bin"])
    assert subprocess.run(["bash", "-c", "command -v debootstrap"], env={"PATH": path}, check=False).returncode != 0
    return path


def test_testhost_without_debootstrap_says_so_in_one_line(tmp_path):
    run, failed = _testhost(tmp_path, {"testhost_suites": [CACHED_SUITE], "testhost_image": "swiftlinux-kit-absent"},
                            PATH=_path_without_debootstrap(tmp_path))
    message = _one_line_refusal(run, failed)
    assert message.startswith("debootstrap is missing, so swiftlinux-kit-absent:bookworm cannot be built;")
    assert "apt-get install -y debootstrap" in message


def test_testhost_reuses_an_image_already_built(tmp_path, docker_client):
    """An image under the tag is used as it is: nothing changes, and debootstrap is not even looked for."""
    image = docker_client.images.get(f"swiftlinux-testhost:{CACHED_SUITE}")
    run, failed = _testhost(tmp_path, {"testhost_suites": [CACHED_SUITE]}, PATH=_path_without_debootstrap(tmp_path))
    assert run.returncode == 0 and not failed, run.stdout
    stats = json.loads(run.stdout)["stats"]["localhost"]
    assert stats["changed"] == 0
    assert docker_client.images.get(f"swiftlinux-testhost:{CACHED_SUITE}").id == image.id


@pytest.mark.parametrize("key", ["capabilities", "cgroupns_mode", "volumes", "tmpfs", "network_mode", "pull",
                                 "command", "override_command", "pre_build_image"])
def test_the_readme_shows_the_example_scenario_platform(key):
    """The README's "Test your own role" snippet is the kit's base platform, setting for setting."""
    import yaml

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Test your own role", 1)[1].split("\n## ", 1)[0]
    snippet = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = yaml.safe_load(snippet)["platforms"][0]
    example = yaml.safe_load((REPO / "kit/molecule/base.yml").read_text())
    assert shown[key] == example["platforms"][0][key]
