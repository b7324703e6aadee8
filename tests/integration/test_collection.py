"""The collection as users get it: a galaxy tarball that installs and works, and set-up errors in one line."""
from __future__ import annotations

import json
import os
import subprocess
import tarfile

from support import REPO, tool_env


def test_galaxy_tarball_installs_and_its_modules_run(tmp_path):
    env = tool_env()
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO)],
                   check=True, capture_output=True, env=env)
    tarball = next(tmp_path.glob("swiftlinux-deploy-*.tar.gz"))
    names = tarfile.open(tarball).getnames()
    assert "plugins/modules/swift_build.py" in names and "roles/service/meta/argument_specs.yml" in names
    assert not [n for n in names if n.startswith((".venv", ".build")) or "/.build/" in n], "build output leaked in"

    # Galaxy cannot be reached here; the dependencies come from the `ansible` package instead.
    collections = tmp_path / "collections"
    config = tmp_path / "ansible.cfg"  # only the installed copy, never the checkout's link
    config.write_text(f"[defaults]\ncollections_path = {collections}\n")
    installed = {**env, "ANSIBLE_CONFIG": str(config),
                 "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    subprocess.run(["ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", str(collections),
                    str(tarball)], check=True, capture_output=True, env=installed)
    assert (collections / "ansible_collections" / "swiftlinux" / "deploy" / "MANIFEST.json").is_file()
    doc = subprocess.run(["ansible-doc", "-t", "module", "swiftlinux.deploy.elf_info"],
                         capture_output=True, text=True, env=installed, check=True)
    assert "pyelftools" in doc.stdout
    run = subprocess.run(["ansible", "localhost", "-c", "local", "-i", "localhost,",
                          "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
                          "-m", "swiftlinux.deploy.elf_info", "-a", "path=/bin/ls"],
                         capture_output=True, text=True, env=installed, cwd=tmp_path, check=False)
    result = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert run.returncode == 0 and result["elf"]["linkage"] == "dynamic" and result["elf"]["path"] == "/bin/ls"


def test_every_module_and_role_is_documented():
    env = tool_env()
    listing = subprocess.run(["ansible-doc", "-t", "module", "--list", "swiftlinux.deploy", "--json"],
                             capture_output=True, text=True, env=env, check=True)
    modules = set(json.loads(listing.stdout))
    shipped = {f"swiftlinux.deploy.{p.stem}" for p in (REPO / "plugins" / "modules").glob("*.py")}
    assert modules == shipped
    for role in (REPO / "roles").iterdir():
        assert (role / "meta" / "argument_specs.yml").is_file(), f"{role.name} has no argument specs"


def test_an_old_or_fake_toolchain_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "swift").write_text("#!/bin/sh\necho 'Swift version 5.5.3 (swift-5.5.3-RELEASE)'\n")
    (fake / "swift").chmod(0o755)
    found = subprocess.run([str(REPO / "scripts" / "find-swift.sh")], capture_output=True, text=True,
                           env={**os.environ, "SWIFT_TOOLCHAIN_BIN": str(fake)}, check=False)
    assert found.returncode != 0
    lines = found.stderr.strip().splitlines()
    assert len(lines) == 1 and "is 5.5" in lines[0] and "install Swift 5.9 or newer" in lines[0]
