"""Unit tests for module_utils/_resolve.py, _bag.py and _sbom.py on real files.

The ELF resolver is checked against `ldd` on every dynamic fixture build and on small C programs
compiled here with gcc to exercise the loader's rules: DT_RPATH is inherited by the libraries a
program loads, DT_RUNPATH is not; $ORIGIN; ld.so.conf includes.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support import built_fixture

from ansible_collections.swiftlinux.deploy.plugins.module_utils._bag import (
    BagError,
    category,
    clear_execstack,
    fingerprint,
    plan_bag,
    required_versions,
    stage_bag,
)
from ansible_collections.swiftlinux.deploy.plugins.module_utils._resolve import (
    Facts,
    ResolveError,
    default_dirs,
    ld_so_conf_dirs,
    real_path,
    resolve_elf,
    resolve_ldd,
)
from ansible_collections.swiftlinux.deploy.plugins.module_utils._sbom import spdx_document

DYNAMIC_PRODUCTS = [("hello", "hello"), ("http-service", "http-service"), ("foundation-service", "foundation-service"),
                    ("multi-exec", "greeter"), ("multi-exec", "counter"), ("resources", "resource-reader"),
                    ("networking", "networking-service")]


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env=dict(os.environ, LD_LIBRARY_PATH="", LD_PRELOAD="", LC_ALL="C"))
    return proc.returncode, proc.stdout, proc.stderr


def gcc(*args, cwd):
    proc = subprocess.run(["gcc", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"gcc {' '.join(args)} failed (install gcc):\n{proc.stderr}"


# ---- the two resolvers agree ----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "product"), DYNAMIC_PRODUCTS)
def test_elf_resolver_agrees_with_ldd_on_every_dynamic_fixture(fixture, product):
    path = built_fixture(fixture, "dynamic")["products"][product]["path"]
    facts = Facts()
    by_elf, by_ldd = resolve_elf(path, facts), resolve_ldd(path, facts, run)
    assert by_elf.missing == by_ldd.missing == {}
    assert by_elf.real() == by_ldd.real()
    assert "libswiftCore.so" in by_elf.found and "libc.so.6" in by_elf.found


@pytest.mark.parametrize("program", ["/bin/ls", "/usr/bin/python3", "/usr/bin/patchelf"])
def test_elf_resolver_agrees_with_ldd_on_system_programs(program):
    facts = Facts()
    assert resolve_elf(program, facts).real() == resolve_ldd(program, facts, run).real()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """prog -> libmid.so.1 (in mid/) -> libleaf.so.1 (in leaf/), linked with RPATH and with RUNPATH variants."""
    root = tmp_path_factory.mktemp("chain")
    for sub in ("leaf", "mid", "bin"):
        (root / sub).mkdir()
    (root / "leaf.c").write_text("int leaf(void) { return 1; }\n")
    (root / "mid.c").write_text("int leaf(void);\nint mid(void) { return leaf() + 1; }\n")
    (root / "prog.c").write_text("int mid(void);\nint main(void) { return mid() == 2 ? 0 : 1; }\n")
    gcc("-shared", "-fPIC", "-Wl,-soname,libleaf.so.1", "leaf.c", "-o", "leaf/libleaf.so.1", cwd=root)
    gcc("-shared", "-fPIC", "-Wl,-soname,libmid.so.1", "mid.c", "-Lleaf", "-l:libleaf.so.1",
        "-o", "mid/libmid.so.1", cwd=root)
    # Both directories on the executable's search path; libmid itself names none.
    search = "-Wl,-rpath,$ORIGIN/../mid:$ORIGIN/../leaf"
    link = ["prog.c", "-Lmid", "-Lleaf", "-l:libmid.so.1", "-Wl,-rpath-link,leaf"]
    gcc(*link, search, "-Wl,--disable-new-dtags", "-o", "bin/prog-rpath", cwd=root)
    gcc(*link, search, "-Wl,--enable-new-dtags", "-o", "bin/prog-runpath", cwd=root)
    return root


def test_rpath_is_inherited_by_the_libraries_a_program_loads(chain):
    facts = Facts()
    prog = str(chain / "bin" / "prog-rpath")
    closure = resolve_elf(prog, facts)
    assert closure.real()["libleaf.so.1"] == str(chain / "leaf" / "libleaf.so.1")
    assert closure.real() == resolve_ldd(prog, facts, run).real()
    assert subprocess.run([prog], check=False).returncode == 0


def test_runpath_is_not_inherited_so_the_leaf_is_missing_for_both_resolvers(chain):
    facts = Facts()
    prog = str(chain / "bin" / "prog-runpath")
    by_elf, by_ldd = resolve_elf(prog, facts), resolve_ldd(prog, facts, run)
    assert list(by_elf.missing) == list(by_ldd.missing) == ["libleaf.so.1"]
    assert [os.path.basename(p) for p in by_elf.missing["libleaf.so.1"]] == ["libmid.so.1"]
    assert [os.path.normpath(p) for p in by_ldd.missing["libleaf.so.1"]] == [str(chain / "mid" / "libmid.so.1")]


def test_missing_library_error_names_the_library_and_who_needs_it(chain):
    with pytest.raises(BagError) as error:
        plan_bag([str(chain / "bin" / "prog-runpath")], [], "non-system", "elf", Facts())
    assert "libleaf.so.1 (needed by libmid.so.1)" in str(error.value)
    assert "extra_libraries" in str(error.value)


def test_symlink_loop_is_named(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ResolveError, match="symlink loop"):
        real_path(str(tmp_path / "a"))


# ---- search path sources ------------------------------------------------------------------------------

def test_ld_so_conf_follows_includes_relative_globs_and_survives_cycles(tmp_path):
    conf_d = tmp_path / "ld.so.conf.d"
    conf_d.mkdir()
    (tmp_path / "ld.so.conf").write_text("# comment\ninclude ld.so.conf.d/*.conf\n/opt/first\n")
    (conf_d / "a.conf").write_text("/opt/a:/opt/b, /opt/c # trailing\nhwcap 0 nosegneg\n")
    (conf_d / "b.conf").write_text(f"include {tmp_path}/ld.so.conf\n/opt/a\n")
    assert ld_so_conf_dirs(str(tmp_path / "ld.so.conf")) == ["/opt/a", "/opt/b", "/opt/c", "/opt/first"]


def test_the_real_ld_so_conf_lists_the_multiarch_directory():
    assert "/usr/lib/x86_64-linux-gnu" in ld_so_conf_dirs() or "/usr/lib/aarch64-linux-gnu" in ld_so_conf_dirs()


def test_default_dirs_put_multiarch_first():
    assert default_dirs("x86_64", 64)[:2] == ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"]
    assert default_dirs("unknown", 32) == ["/lib", "/usr/lib"]


# ---- policy --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "path", "expected"), [
    ("ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "loader"),
    ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", "base"),
    ("libstdc++.so.6", None, "base"),
    ("libgcc_s.so.1", None, "base"),
    ("libswiftCore.so", "/opt/swift/usr/lib/swift/linux/libswiftCore.so", "swift"),
    ("lib_FoundationICU.so", None, "swift"),
    ("libcustom.so", "/opt/toolchain/usr/lib/swift/linux/libcustom.so", "swift"),
    ("libcurl.so.4", "/usr/lib/x86_64-linux-gnu/libcurl.so.4", "other"),
])
def test_category(name, path, expected):
    assert category(name, path) == expected


@pytest.mark.slow
def test_scopes_keep_what_they_promise():
    path = built_fixture("networking", "dynamic")["products"]["networking-service"]["path"]
    facts = Facts()
    kept = {scope: {lib["name"] for lib in plan_bag([path], [], scope, "elf", facts).bagged}
            for scope in ("swift", "non-system", "all")}
    assert kept["swift"] < kept["non-system"] < kept["all"]
    assert all(category(name) == "swift" for name in kept["swift"])
    assert {"libcurl.so.4", "libxml2.so.2"} <= kept["non-system"] - kept["swift"]
    assert not {"libc.so.6", "libstdc++.so.6", "libgcc_s.so.1"} & kept["non-system"]
    assert {"libc.so.6", "ld-linux-x86-64.so.2", "libstdc++.so.6"} <= kept["all"]


@pytest.mark.slow
def test_required_versions_skip_glibc_itself_and_fingerprint_is_stable():
    path = built_fixture("http-service", "dynamic")["products"]["http-service"]["path"]
    plan = plan_bag([path], [], "all", "elf", Facts())
    glibc, glibcxx = required_versions(plan, [(lib["name"], lib["facts"]) for lib in plan.bagged])
    assert glibc and glibcxx and glibc.startswith("2.")
    options = {"scope": "all"}
    assert fingerprint(plan, options, []) == fingerprint(plan_bag([path], [], "all", "elf", Facts()), options, [])
    assert fingerprint(plan, options, []) != fingerprint(plan, {"scope": "swift"}, [])


def test_two_executables_with_one_name_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    os.symlink("/bin/ls", tmp_path / "a" / "ls")
    with pytest.raises(BagError, match="two executables are both named ls"):
        plan_bag(["/bin/ls", str(tmp_path / "a" / "ls")], [], "non-system", "elf", Facts())


# ---- SPDX ----------------------------------------------------------------------------------------------

def test_spdx_document_is_spdx_2_3_and_deterministic():
    files = [
        {"path": "lib/libcurl.so.4.8.0", "sha256": "a" * 64, "sha1": "b" * 40, "size": 10,
         "package": "libcurl4:amd64", "package_version": "7.88.1-10+deb12u8"},
        {"path": "bin/app", "sha256": "c" * 64, "size": 5, "package": None, "package_version": None},
    ]
    doc = spdx_document("bag-app", files, created="2024-01-01T00:00:00Z")
    assert doc == spdx_document("bag-app", list(reversed(files)), created="2024-01-01T00:00:00Z")
    assert (doc["spdxVersion"], doc["dataLicense"], doc["SPDXID"]) == ("SPDX-2.3", "CC0-1.0", "SPDXRef-DOCUMENT")
    assert [f["fileName"] for f in doc["files"]] == ["./bin/app", "./lib/libcurl.so.4.8.0"]
    curl = doc["files"][1]
    assert {c["algorithm"] for c in curl["checksums"]} == {"SHA1", "SHA256"}
    deb = [p for p in doc["packages"] if p["name"] == "libcurl4"]
    assert deb and deb[0]["versionInfo"] == "7.88.1-10+deb12u8"
    assert deb[0]["externalRefs"][0]["referenceLocator"] == "pkg:deb/debian/libcurl4@7.88.1-10%2Bdeb12u8?arch=amd64"
    ids = {p["SPDXID"] for p in doc["packages"]} | {f["SPDXID"] for f in doc["files"]} | {"SPDXRef-DOCUMENT"}
    assert all(r["spdxElementId"] in ids and r["relatedSpdxElement"] in ids for r in doc["relationships"])
    json.dumps(doc)


def test_facts_are_read_once_per_real_file(tmp_path):
    link = tmp_path / "ls"
    link.symlink_to("/bin/ls")
    facts = Facts()
    assert facts(str(link)) is facts("/bin/ls")
    assert Path(real_path(str(link))) == Path("/bin/ls").resolve()


@pytest.mark.parametrize("crafted", ["../../escaped.so", "/etc/ld.so.preload", ".."])
def test_a_library_name_that_is_not_a_plain_file_name_never_becomes_a_bag_path(tmp_path, crafted):
    """A DT_NEEDED entry is untrusted: a name with a directory part must not place a file outside lib/."""
    path = built_fixture("hello", "dynamic")["products"]["hello"]["path"]
    plan = plan_bag([path], [], "non-system", "elf", Facts())
    victim = next(name for name, lib in plan.libraries.items() if lib["bagged"])
    plan.libraries[crafted] = dict(plan.libraries.pop(victim), name=crafted)
    stage = tmp_path / "a" / "stage"
    stage.mkdir(parents=True)
    with pytest.raises(BagError, match="not a plain file name"):
        stage_bag(plan, str(stage), [], lambda cmd: (0, "", ""))
    assert list(tmp_path.iterdir()) == [tmp_path / "a"] and list((tmp_path / "a").iterdir()) == [stage]
    assert not any(p.is_symlink() or p.is_file() for p in stage.rglob("*")), "refused before anything was written"


# ---- the backtracer -------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_backtracer_comes_from_the_bagged_runtimes_toolchain_with_the_libraries_it_alone_loads():
    path = built_fixture("http-service", "dynamic")["products"]["http-service"]["path"]
    plain = plan_bag([path], [], "non-system", "elf", Facts())
    plan = plan_bag([path], [], "non-system", "elf", Facts(), backtracer=True)
    toolchain = Path(plan.libraries["libswiftCore.so"]["real"]).parents[3]
    assert plan.backtracer["source"] == real_path(str(toolchain / "libexec" / "swift" / "linux" / "swift-backtrace"))
    assert plan.backtracer_path == "libexec/swift-backtrace" and plain.backtracer_path is None
    only_for_it = {lib["name"] for lib in plan.bagged} - {lib["name"] for lib in plain.bagged}
    assert only_for_it == {"libswiftRuntime.so", "libswiftSwiftOnoneSupport.so"}
    assert all(plan.libraries[name]["for"] == {"swift-backtrace"} for name in only_for_it)
    assert fingerprint(plan, {}, []) != fingerprint(plain, {}, [])
    assert plan_bag([path], [], "all", "elf", Facts(), backtracer=True).backtracer_path == "bin/swift-backtrace"


def test_no_runtime_means_no_backtracer_with_a_warning_and_a_library_is_no_backtracer():
    plan = plan_bag(["/bin/true"], [], "non-system", "elf", Facts(), backtracer=True)
    assert plan.backtracer is None and any("no backtracer was bagged" in w for w in plan.warnings)
    with pytest.raises(BagError, match="is not a program"):
        plan_bag(["/bin/true"], [], "non-system", "elf", Facts(), backtracer=real_path("/lib/x86_64-linux-gnu/libm.so.6"))
    with pytest.raises(BagError, match="has the name of an executable"):
        plan_bag(["/bin/true"], [], "non-system", "elf", Facts(), backtracer="/usr/bin/true")


def test_clear_execstack_drops_only_the_exec_bit_of_gnu_stack(tmp_path):
    source = tmp_path / "x.c"
    source.write_text("int x(void) { return 1; }\n")
    gcc("-shared", "-fPIC", "-Wl,-z,execstack", "-o", "libx.so", "x.c", cwd=tmp_path)
    library = tmp_path / "libx.so"

    def stack_flags():
        headers = subprocess.run(["readelf", "-lW", str(library)], capture_output=True, text=True, check=True).stdout
        return next(line.split()[-2] for line in headers.splitlines() if "GNU_STACK" in line)

    assert stack_flags() == "RWE"
    before = library.read_bytes()
    assert clear_execstack(str(library)) is True and stack_flags() == "RW"
    after = library.read_bytes()
    assert len(before) == len(after) and sum(a != b for a, b in zip(before, after)) == 1
    assert clear_execstack(str(library)) is False
    (tmp_path / "text").write_bytes(b"not an ELF file")
    assert clear_execstack(str(tmp_path / "text")) is False
