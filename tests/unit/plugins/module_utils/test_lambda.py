"""Unit tests for module_utils/_lambda.py: runtime policy, package entries, the reproducible zip and the quotas."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import zipfile

import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _lambda
from ansible_collections.swiftlinux.deploy.plugins.module_utils._lambda import LambdaError
from ansible_collections.swiftlinux.deploy.plugins.module_utils._manifest import ManifestError


# ---- function names ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["orders-api", "a", "A_b-9", "x" * 64])
def test_names_lambda_accepts(name):
    assert _lambda.check_function_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "orders api", "orders.api", "orders:prod", "ärger", "a/b",
                                  "arn:aws:lambda:us-east-1:123456789012:function:f", "f\n"])
def test_names_lambda_rejects_are_one_sentence(name):
    with pytest.raises(LambdaError, match=r"^function_name .* is not a name Lambda accepts; use 1 to 64 letters"):
        _lambda.check_function_name(name)


# ---- runtime policy ----------------------------------------------------------------------------------------------

def facts(**overrides):
    """ELF facts of a static_stdlib program as elf_facts gives them (a glibc 2.34 build)."""
    base = dict(path="/b/fn", machine="x86_64", linkage="dynamic", interpreter="/lib64/ld-linux-x86-64.so.2",
                swift_runtime="static", needed=["libstdc++.so.6", "libm.so.6", "libgcc_s.so.1", "libc.so.6"],
                version_needs={"libc.so.6": ["GLIBC_2.2.5", "GLIBC_2.34"], "libm.so.6": ["GLIBC_2.29"],
                               "libstdc++.so.6": ["CXXABI_1.3", "GLIBCXX_3.4", "GLIBCXX_3.4.29"]})
    base.update(overrides)
    return base


def test_static_executable_and_fitting_static_stdlib_are_accepted():
    assert _lambda.check_runtime(facts(linkage="static", interpreter=None, needed=[], version_needs={})) \
        == "static_executable"
    assert _lambda.check_runtime(facts()) == "static_stdlib"


def test_dynamic_build_names_the_modes_that_work():
    with pytest.raises(LambdaError) as refused:
        _lambda.check_runtime(facts(swift_runtime="dynamic", needed=["libswiftCore.so", "libc.so.6"]))
    assert "/b/fn is a dynamic build" in str(refused.value)
    assert "static_executable" in str(refused.value) and "static_stdlib" in str(refused.value)


def test_glibc_and_glibcxx_too_new_name_version_library_and_the_way_out():
    newer = facts(version_needs={"libc.so.6": ["GLIBC_2.34"], "libm.so.6": ["GLIBC_2.29", "GLIBC_2.35"],
                                 "libstdc++.so.6": ["GLIBCXX_3.4.9", "GLIBCXX_3.4.30", "CXXABI_1.3.13"]})
    with pytest.raises(LambdaError) as refused:
        _lambda.check_runtime(newer)
    message = str(refused.value)
    assert "needs GLIBC_2.35 (from libm.so.6) and GLIBCXX_3.4.30 (from libstdc++.so.6)" in message
    assert "provided.al2023 runtime has glibc 2.34 and GLIBCXX_3.4.29" in message
    assert "link_mode static_executable" in message and "Amazon Linux 2023" in message
    # A runtime with a newer glibc (an option) takes it.
    assert _lambda.check_runtime(newer, glibc="2.35", glibcxx="3.4.30") == "static_stdlib"


def test_versions_compare_as_numbers_not_text():
    # "2.9" < "2.34" and "3.4.9" < "3.4.29": text comparison would refuse these.
    old = facts(version_needs={"libc.so.6": ["GLIBC_2.9"], "libstdc++.so.6": ["GLIBCXX_3.4.9"]})
    assert _lambda.check_runtime(old) == "static_stdlib"


def test_a_system_library_the_runtime_lacks_is_refused():
    with pytest.raises(LambdaError, match=r"needs libcurl.so.4, which Lambda's provided.al2023 runtime does not "
                                          r"provide .*FoundationNetworking needs libcurl"):
        _lambda.check_runtime(facts(needed=["libcurl.so.4", "libc.so.6"]))


def test_architectures_lambda_runs():
    assert _lambda.lambda_architecture(facts()) == "x86_64"
    assert _lambda.lambda_architecture(facts(machine="aarch64")) == "arm64"
    with pytest.raises(LambdaError, match="built for riscv64, which Lambda does not run"):
        _lambda.lambda_architecture(facts(machine="riscv64"))


# ---- entries and the zip -----------------------------------------------------------------------------------------

def bundle_tree(root, order=("b.txt", "a.txt")):
    """A program and a resource bundle with a nested directory and a link inside the bundle."""
    root.mkdir(parents=True, exist_ok=True)
    program = root / "prog"
    program.write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    bundle = root / "pkg_target.resources"
    (bundle / "nested").mkdir(parents=True)
    for name in order:  # creation order must not matter
        (bundle / name).write_text(name * 100)
    (bundle / "nested" / "c.json").write_text('{"c": 1}')
    os.symlink("../a.txt", bundle / "nested" / "a-link.txt")
    return program, {"pkg_target.resources": str(bundle)}


def test_entries_are_sorted_with_bootstrap_and_the_bundle(tmp_path):
    program, bundles = bundle_tree(tmp_path)
    entries = _lambda.package_entries(str(program), bundles)
    assert [e.name for e in entries] == [
        "bootstrap", "pkg_target.resources/", "pkg_target.resources/a.txt", "pkg_target.resources/b.txt",
        "pkg_target.resources/nested/", "pkg_target.resources/nested/a-link.txt",
        "pkg_target.resources/nested/c.json"]
    link = next(e for e in entries if e.kind == "symlink")
    assert link.target == "../a.txt"
    assert _lambda.unzipped_size(entries) == program.stat().st_size + 2 * 500 + len('{"c": 1}') + len("../a.txt")


def test_zip_is_the_same_bytes_whatever_the_times_modes_and_creation_order(tmp_path):
    first_program, first = bundle_tree(tmp_path / "one")
    second_program, second = bundle_tree(tmp_path / "two", order=("a.txt", "b.txt"))
    os.utime(second_program, (1, 1))
    os.chmod(second_program, 0o700)
    os.chmod(os.path.join(second["pkg_target.resources"], "a.txt"), 0o600)
    one = _lambda.write_zip(str(tmp_path / "one.zip"), _lambda.package_entries(str(first_program), first))
    two = _lambda.write_zip(str(tmp_path / "two.zip"), _lambda.package_entries(str(second_program), second))
    assert one == two
    assert one[1] == (tmp_path / "one.zip").stat().st_size


def test_zip_entries_have_fixed_time_modes_and_links(tmp_path):
    program, bundles = bundle_tree(tmp_path)
    _lambda.write_zip(str(tmp_path / "p.zip"), _lambda.package_entries(str(program), bundles))
    with zipfile.ZipFile(tmp_path / "p.zip") as package:
        infos = {info.filename: info for info in package.infolist()}
        assert [i.filename for i in package.infolist()] == sorted(infos)
        assert {i.date_time for i in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
        modes = {name: i.external_attr >> 16 for name, i in infos.items()}
        assert modes["bootstrap"] == stat.S_IFREG | 0o755
        assert modes["pkg_target.resources/a.txt"] == stat.S_IFREG | 0o644
        assert modes["pkg_target.resources/nested/"] == stat.S_IFDIR | 0o755
        assert modes["pkg_target.resources/nested/a-link.txt"] == stat.S_IFLNK | 0o777
        assert package.read("pkg_target.resources/nested/a-link.txt") == b"../a.txt"
        assert infos["bootstrap"].compress_type == zipfile.ZIP_DEFLATED
        assert package.read("bootstrap") == program.read_bytes()


def test_info_zip_restores_modes_and_the_link(tmp_path):
    if shutil.which("unzip") is None:
        pytest.fail("unzip is missing; install it with 'apt-get install -y unzip'", pytrace=False)
    program, bundles = bundle_tree(tmp_path / "src")
    _lambda.write_zip(str(tmp_path / "p.zip"), _lambda.package_entries(str(program), bundles))
    out = tmp_path / "out"
    subprocess.run(["unzip", "-q", str(tmp_path / "p.zip"), "-d", str(out)], check=True)
    assert stat.S_IMODE((out / "bootstrap").stat().st_mode) == 0o755
    link = out / "pkg_target.resources" / "nested" / "a-link.txt"
    assert link.is_symlink() and os.readlink(link) == "../a.txt" and link.read_text() == "a.txt" * 100


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside.txt", "../../other.resources/x"])
def test_a_bundle_link_leading_out_is_refused(tmp_path, target):
    program, bundles = bundle_tree(tmp_path)
    (tmp_path / "outside.txt").write_text("host file")
    os.symlink(target, tmp_path / "pkg_target.resources" / "nested" / "escape")
    with pytest.raises(ManifestError, match=r"resource bundle pkg_target.resources: symbolic link nested/escape"):
        _lambda.package_entries(str(program), bundles)


def test_a_fifo_in_a_bundle_is_refused_without_opening_it(tmp_path):
    program, bundles = bundle_tree(tmp_path)
    os.mkfifo(tmp_path / "pkg_target.resources" / "pipe")
    with pytest.raises(ManifestError, match="is a special file"):
        _lambda.package_entries(str(program), bundles)


# ---- quotas ------------------------------------------------------------------------------------------------------

def test_quota_message_names_size_limit_and_advice():
    tips = _lambda.size_advice(stripped=False, full_foundation=True)
    with pytest.raises(LambdaError) as refused:
        _lambda.check_quota("the package of fn unzipped", 315883520, _lambda.UNZIPPED_LIMIT, tips)
    assert str(refused.value) == (
        "the package of fn unzipped is 301.2 MB (315,883,520 bytes), over Lambda's limit of 250.0 MB "
        "(262,144,000 bytes); try: set strip=true (the debug info then stays beside the zip); rebuild with "
        "swift_build optimize_size=true (-Osize), and lto=full; import FoundationEssentials instead of Foundation, "
        "which leaves out FoundationInternationalization and its ICU data")
    _lambda.check_quota("at the limit", _lambda.ZIPPED_LIMIT, _lambda.ZIPPED_LIMIT, tips)  # not over


def test_advice_leaves_out_what_does_not_apply():
    assert _lambda.size_advice(stripped=True, full_foundation=False) == [
        "rebuild with swift_build optimize_size=true (-Osize), and lto=full"]


def test_full_foundation_is_found_across_read_blocks(tmp_path):
    needle = b"FoundationInternationalization"
    straddling = tmp_path / "straddling"
    straddling.write_bytes(b"\0" * ((1 << 20) - 10) + needle + b"\0" * 10)
    essentials = tmp_path / "essentials"
    essentials.write_bytes(b"FoundationEssentials" + b"\0" * 100)
    assert _lambda.uses_full_foundation(str(straddling))
    assert not _lambda.uses_full_foundation(str(essentials))


def test_symbols_are_named_by_the_version_they_bind_to():
    # /bin/ls, as every Debian host has it: __libc_start_main binds to a GLIBC_ version of libc.so.6.
    symbols = _lambda.symbols_by_version("/bin/ls")
    assert any("__libc_start_main" in names for version, names in symbols.items() if version.startswith("GLIBC_2."))
    assert all(names == sorted(names) for names in symbols.values())


def test_naming_symbols_never_fails(tmp_path):
    (tmp_path / "not-elf").write_text("#!/bin/sh\n")
    assert _lambda.symbols_by_version(str(tmp_path / "not-elf")) == {}
    assert _lambda.symbols_by_version(str(tmp_path / "missing")) == {}


# ---- the container image -----------------------------------------------------------------------------------------

def test_image_files_put_the_package_at_var_runtime_with_the_zip_modes(tmp_path):
    program, bundles = bundle_tree(tmp_path / "src")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    files = {e.path: e for e in _lambda.image_files(_lambda.package_entries(str(program), bundles), str(ca))}
    assert files["var/runtime/bootstrap"].mode == 0o755 and files["var/runtime/bootstrap"].source == str(program)
    assert files["var/runtime/pkg_target.resources/a.txt"].mode == 0o644
    assert files["var/runtime/pkg_target.resources/nested/a-link.txt"].target == "../a.txt"
    assert (files["tmp"].kind, files["tmp"].mode) == ("dir", 0o1777) and files["var/task"].kind == "dir"
    assert files["etc/ssl/certs/ca-certificates.crt"].source == str(ca)
    with pytest.raises(LambdaError, match="the CA bundle /nonexistent does not exist; install ca-certificates"):
        _lambda.image_files([], "/nonexistent")


def test_image_config_starts_the_bootstrap_itself_without_a_user():
    config = _lambda.image_config("orders-api", "static_executable", "6.3.1")
    assert config["Entrypoint"] == ["/var/runtime/bootstrap"] and "Cmd" not in config and "User" not in config
    assert config["WorkingDir"] == "/var/task" and "LAMBDA_TASK_ROOT=/var/task" in config["Env"]
    assert config["Labels"]["io.swiftlinux.lambda.function-name"] == "orders-api"
    assert config["Labels"]["io.swiftlinux.swift-version"] == "6.3.1"
