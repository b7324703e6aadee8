"""swiftlinux.deploy.elf_info run through ansible itself on localhost, against real binaries."""
from __future__ import annotations

import io
import json
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from support import REPO, run_module, swift_bin_dir, tool_env


@pytest.fixture(scope="session")
def hello(tmp_path_factory) -> Path:
    """A dynamically linked Swift hello world, compiled once per session."""
    out = tmp_path_factory.mktemp("elf_info")
    (out / "hello.swift").write_text('print("hello")\n', encoding="utf-8")
    proc = subprocess.run([str(swift_bin_dir() / "swiftc"), "-O", "-module-cache-path", str(out / "module-cache"),
                           "hello.swift", "-o", "hello"], cwd=out, capture_output=True, text=True, env=tool_env(), check=False)
    assert proc.returncode == 0, f"swiftc failed:\n{proc.stderr}"
    return out / "hello"


def assert_clean_failure(result: dict, path) -> str:
    """A failure the user can act on: one line naming the file, no Python traceback anywhere."""
    assert result.get("failed") is True, result
    assert not result.get("changed")
    msg = result["msg"]
    assert "\n" not in msg.strip()
    assert str(path) in msg
    assert "Traceback" not in json.dumps(result)
    return msg


def test_single_path(hello):
    result = run_module("elf_info", {"path": str(hello)})
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["files"] == [result["elf"]]
    elf = result["elf"]
    assert elf["path"] == str(hello)
    assert (elf["linkage"], elf["swift_runtime"]) == ("dynamic", "dynamic")
    assert "libswiftCore.so" in elf["needed"]
    assert elf["size"] == hello.stat().st_size


def test_paths_keep_their_order(hello):
    paths = ["/bin/ls", str(hello), "/bin/ls"]
    result = run_module("elf_info", {"paths": paths})
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert "elf" not in result
    assert [item["path"] for item in result["files"]] == paths
    assert [item["swift_runtime"] for item in result["files"]] == ["none", "dynamic", "none"]


def test_check_mode_reports_the_same_facts(hello):
    normal = run_module("elf_info", {"path": str(hello)})
    checked = run_module("elf_info", {"path": str(hello)}, check_mode=True)
    assert checked["changed"] is False
    assert checked["elf"] == normal["elf"]


def test_missing_file(tmp_path):
    missing = tmp_path / "no-such-binary"
    msg = assert_clean_failure(run_module("elf_info", {"path": str(missing)}), missing)
    assert "does not exist" in msg


def test_directory(tmp_path):
    msg = assert_clean_failure(run_module("elf_info", {"path": str(tmp_path)}), tmp_path)
    assert "is a directory" in msg


@pytest.mark.parametrize(("content", "says"), [(b"#!/bin/sh\nexec server\n", "it is a script"),
                                               (b"", "it is an empty file")])
def test_not_an_elf_file(content, says, tmp_path):
    path = tmp_path / "server"
    path.write_bytes(content)
    msg = assert_clean_failure(run_module("elf_info", {"path": str(path)}), path)
    assert "is not an ELF file" in msg and says in msg


def test_truncated_elf(hello, tmp_path):
    truncated = tmp_path / "truncated"
    truncated.write_bytes(hello.read_bytes()[:100])
    msg = assert_clean_failure(run_module("elf_info", {"path": str(truncated)}), truncated)
    assert msg.startswith(f"{truncated} is not a readable ELF file: ") and "truncated or corrupt" in msg


def test_one_bad_path_in_a_list_names_that_path(hello, tmp_path):
    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    result = run_module("elf_info", {"paths": [str(hello), str(script), "/bin/ls"]})
    msg = assert_clean_failure(result, script)
    assert str(hello) not in msg


@pytest.mark.parametrize(("args", "says"), [({"path": "/bin/ls", "paths": ["/bin/ls"]}, "mutually exclusive"),
                                            ({}, "one of the following is required")])
def test_path_and_paths_are_exclusive_and_one_is_required(args, says):
    result = run_module("elf_info", args)
    assert result.get("failed") is True
    assert says in result["msg"] and "path" in result["msg"]


def test_missing_pyelftools_is_reported(tmp_path):
    """The module on a Python without pyelftools: the venv's interpreter with site-packages switched off."""
    interpreter = tmp_path / "python-without-site"
    interpreter.write_text(f'#!/bin/sh\nexec "{REPO}/.venv/bin/python" -S "$@"\n', encoding="utf-8")
    interpreter.chmod(0o755)
    env = tool_env()
    env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(["ansible", "localhost", "-c", "local", "-i", "localhost,",
                           "-e", f"ansible_python_interpreter={interpreter}",
                           "-m", "swiftlinux.deploy.elf_info", "-a", json.dumps({"path": "/bin/ls"})],
                          capture_output=True, text=True, env=env, cwd=REPO, check=False)
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result.get("failed") is True, result
    assert "required Python library (pyelftools)" in result["msg"]
    assert "Traceback" not in json.dumps(result)


def _section_header(data: bytes, name: str) -> tuple[int, dict]:
    """Offset of the named section's header and the header itself, read with pyelftools from a sound file."""
    elf = ELFFile(io.BytesIO(data))
    index = elf.get_section_index(name)
    return elf["e_shoff"] + index * elf["e_shentsize"], elf.get_section(index).header


def _put(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    buffer = bytearray(data)
    struct.pack_into("<" + fmt, buffer, offset, value)
    return bytes(buffer)


def _absurd_section_size(data):
    header = _section_header(data, ".dynstr")[0]
    return _put(data, header + 32, "Q", 1 << 62)


def _absurd_note_size(data):
    note = _section_header(data, ".note.gnu.build-id")[1]
    return _put(data, note["sh_offset"] + 4, "I", 0xfffffff0)


def _looping_version_chain(data):
    header, verneed = _section_header(data, ".gnu.version_r")
    return _put(_put(data, header + 44, "I", 0xffffffff), verneed["sh_offset"] + 12, "I", 0)


def _absurd_section_count(data):
    return _put(data, 0x3c, "H", 0xfff0)


@pytest.mark.parametrize("craft", [_absurd_section_size, _absurd_note_size, _looping_version_chain,
                                   _absurd_section_count], ids=lambda craft: craft.__name__.strip("_"))
def test_hostile_elf_fails_with_one_sentence(craft, hello, tmp_path):
    """A crafted ELF file through the real module: one sentence naming the file, no traceback, no hang."""
    crafted = tmp_path / "server"
    crafted.write_bytes(craft(hello.read_bytes()))
    result = run_module("elf_info", {"paths": [str(hello), str(crafted)]})
    msg = assert_clean_failure(result, crafted)
    assert msg.startswith(f"{crafted} is not a readable ELF file: ") and msg.endswith("so copy or build it again.")
    assert "Module failed" not in msg and str(hello) not in msg


def test_device_is_refused_without_reading_it():
    """/dev/zero would never end; it is refused from its file type before it is opened."""
    msg = assert_clean_failure(run_module("elf_info", {"path": "/dev/zero"}), "/dev/zero")
    assert "device, pipe or socket" in msg
