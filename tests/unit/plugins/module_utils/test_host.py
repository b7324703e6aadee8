"""_host: the GLIBCXX reading compared with pyelftools on every test-host suite's own libstdc++, and its bounds."""
from __future__ import annotations

import io
import tarfile

import docker
import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _host
from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import elf_facts

SUITES = ("trixie", "bookworm", "bullseye")


def _file_from(container, path: str) -> tuple[tarfile.TarInfo, bytes]:
    stream, dummy = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.getmembers()[0]
        return member, (archive.extractfile(member).read() if member.isfile() else b"")


@pytest.fixture(scope="module")
def suite_libstdcxx(tmp_path_factory):
    """Each test host's own libstdc++.so.6 file, copied out of its image without starting it."""
    out = tmp_path_factory.mktemp("libstdcxx")
    docker_client = docker.from_env()
    found = {}
    for suite in SUITES:
        container = docker_client.containers.create(f"swiftlinux-testhost:{suite}", command="true",
                                                    network_mode="none", labels={"swiftlinux.test": "pytest"})
        try:
            link, dummy = _file_from(container, "/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
            assert link.issym(), f"{suite}: libstdc++.so.6 is not the usual SONAME link"
            member, data = _file_from(container, f"/usr/lib/x86_64-linux-gnu/{link.linkname}")
        finally:
            container.remove(force=True)
        assert member.isfile() and data.startswith(b"\x7fELF"), f"{suite}: {link.linkname} is not an ELF file"
        found[suite] = out / suite
        found[suite].write_bytes(data)
    return found


@pytest.mark.parametrize("suite", SUITES)
def test_glibcxx_matches_pyelftools_on_every_suite(suite, suite_libstdcxx):
    path = suite_libstdcxx[suite]
    provided = elf_facts(str(path))["glibcxx_provided"]
    assert provided, path
    assert _host.highest_glibcxx(str(path)) == provided


def test_a_version_name_split_across_two_reads_is_found(tmp_path):
    library = tmp_path / "libstdc++.so.6"
    name = b"\x00GLIBCXX_3.4.99\x00"
    split = _host._SCAN_CHUNK - 6  # the name starts in the first read and ends in the second
    library.write_bytes(b"\x7fELF" + b"\x01" * (split - 4) + name + b"\x00GLIBCXX_3.4.9\x00GLIBCXX_DEBUG_MESSAGE_LENGTH\x00")
    assert _host.highest_glibcxx(str(library)) == "3.4.99"


def test_reading_stops_at_the_limit(tmp_path):
    library = tmp_path / "libstdc++.so.6"
    library.write_bytes(b"\x00GLIBCXX_3.4.1\x00GLIBCXX_3.4.2\x00" + b"\x00" * 4096 + b"\x00GLIBCXX_3.4.40\x00")
    assert _host.highest_glibcxx(str(library), limit=1024) == "3.4.2"  # neighbours share one NUL
    assert _host.highest_glibcxx(str(library)) == "3.4.40"
    library.write_bytes(b"no version names here")
    assert _host.highest_glibcxx(str(library)) is None


def test_ldconfig_cache_prefers_the_native_abi():
    text = """3 libs found in cache `/etc/ld.so.cache'
\tlibz.so.1 (libc6) => /usr/lib/i386-linux-gnu/libz.so.1
\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1
\tlibc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6
"""
    native = {"libz.so.1": "/lib/x86_64-linux-gnu/libz.so.1", "libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6"}
    assert _host.native_libraries(text, "x86_64") == native
    assert _host.native_libraries(text, "an-unknown-machine")["libz.so.1"] == "/usr/lib/i386-linux-gnu/libz.so.1"


def test_path_info_names_what_is_there_without_following_links(tmp_path):
    releases = tmp_path / "releases"
    (releases / "b1").mkdir(parents=True)
    (releases / "a2").mkdir()
    (releases / ".staging-c3").mkdir()
    (tmp_path / "current").symlink_to("releases/b1")
    (tmp_path / "file").write_text("x")
    assert _host.path_info(str(releases)) == {"type": "directory", "entries": [".staging-c3", "a2", "b1"],
                                              "truncated": False}
    assert _host.path_info(str(tmp_path / "current")) == {"type": "link", "target": "releases/b1"}
    assert _host.path_info(str(tmp_path / "file")) == {"type": "file"}
    assert _host.path_info(str(tmp_path / "missing")) is None
    assert _host.path_info(str(tmp_path / "file" / "below")) is None


def test_path_info_lists_at_most_the_limit(tmp_path):
    for index in range(5):
        (tmp_path / str(index)).mkdir()
    assert _host.path_info(str(tmp_path), limit=3) == {"type": "directory", "entries": ["0", "1", "2"],
                                                       "truncated": True}


def test_user_info_reads_the_password_and_group_databases():
    import pwd

    root = pwd.getpwuid(0)
    assert _host.user_info(root.pw_name) == {"uid": 0, "group": "root", "home": root.pw_dir, "shell": root.pw_shell}
    assert _host.user_info("swiftlinux-no-such-user") is None
