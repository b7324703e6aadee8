"""swift_build on real builds of every fixture in every link mode, plus its bad inputs.

Builds go through `ansible` and the real toolchain; each fixture x mode is built once per session
(tests/support.py) and reused from .build/test-cache by later runs of the same checkout.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from support import FIXTURES, IMPOSSIBLE, LINK_MODES, PRODUCTS, built_fixture, run_module, tool_env

pytestmark = pytest.mark.slow

MATRIX = [(f, m) for f in PRODUCTS for m in LINK_MODES if (f, m) not in IMPOSSIBLE]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("fixture", "mode"), MATRIX)
def test_every_fixture_builds_in_every_mode_and_is_that_mode(fixture, mode):
    result = built_fixture(fixture, mode)
    assert sorted(result["products"]) == sorted(PRODUCTS[fixture])
    for name, product in result["products"].items():
        exe, elf = Path(product["path"]), product["elf"]
        assert exe.name == name and sha256(exe) == product["sha256"]
        if mode == "static_executable":
            assert (elf["linkage"], elf["interpreter"], elf["needed"]) == ("static", None, [])
        elif mode == "static_stdlib":
            assert elf["linkage"] == "dynamic" and elf["swift_runtime"] == "static"
            assert not [lib for lib in elf["needed"] if "swift" in lib.lower()]
        else:
            assert elf["swift_runtime"] == "dynamic" and "libswiftCore.so" in elf["needed"]
        # Stripped, with the debug info kept beside it and linked by name.
        assert elf["stripped"] and elf["debuglink"] == f"{name}.debug"
        assert Path(product["debug_file"]) == exe.with_name(f"{name}.debug")
        assert product["size"] < product["unstripped_size"]
        assert product["debug_size"] == exe.with_name(f"{name}.debug").stat().st_size > 0
        # The backtracer travels with static builds only; dynamic ones use the runtime's own.
        assert (product["backtracer"] is not None) == (mode != "dynamic")
        if product["backtracer"]:
            assert Path(product["backtracer"]).is_file()


def test_debug_file_still_symbolicates_the_stripped_binary():
    product = built_fixture("hello", "static_stdlib")["products"]["hello"]
    debug = subprocess.run(["readelf", "--wide", "--sections", product["debug_file"]],
                           capture_output=True, text=True, check=True).stdout
    assert ".debug_info" in debug and ".symtab" in debug
    build_ids = {subprocess.run(["readelf", "-n", path], capture_output=True, text=True, check=True)
                 .stdout.split("Build ID:")[1].split()[0] for path in (product["path"], product["debug_file"])}
    assert len(build_ids) == 1, "the debug file must carry the executable's build-id"


def test_resource_bundles_are_copied_beside_the_executable():
    product = built_fixture("resources", "static_stdlib")["products"]["resource-reader"]
    assert [Path(p).name for p in product["resources"]] == ["resources_resource-reader.resources"]
    bundle = Path(product["resources"][0])
    assert bundle.parent == Path(product["path"]).parent and any(bundle.iterdir())


@pytest.mark.parametrize("mode", LINK_MODES)
def test_built_binaries_run(mode):
    out = subprocess.run([built_fixture("hello", mode)["products"]["hello"]["path"]],
                         capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "Hello, world!"


def test_static_executable_with_foundation_networking_fails_and_names_the_mode_that_works(tmp_path):
    dest = tmp_path / "out"
    result = run_module("swift_build", {"package_path": str(FIXTURES / "networking"),
                                        "link_mode": "static_executable", "dest": str(dest)})
    assert result["failed"]
    assert "FoundationNetworking" in result["msg"] and "static_stdlib" in result["msg"]
    assert "undefined reference" in result["msg"], "the linker's own lines must be shown"
    assert not dest.exists(), "a failed build must leave no output"


@pytest.fixture()
def hello_copy(tmp_path):
    """A private copy of the hello fixture, safe to edit."""
    package = tmp_path / "hello"
    shutil.copytree(FIXTURES / "hello", package, ignore=shutil.ignore_patterns(".build"))
    return package


def test_unchanged_sources_do_not_rebuild_and_edits_do(hello_copy, tmp_path):
    args = {"package_path": str(hello_copy), "link_mode": "static_stdlib", "dest": str(tmp_path / "out")}
    first = run_module("swift_build", args)
    assert first["changed"] and not first.get("failed")
    exe = Path(first["products"]["hello"]["path"])
    mtime = exe.stat().st_mtime_ns

    second = run_module("swift_build", args)
    assert not second["changed"] and exe.stat().st_mtime_ns == mtime
    assert second["products"]["hello"]["sha256"] == first["products"]["hello"]["sha256"]

    main = hello_copy / "Sources" / "hello" / "main.swift"
    main.write_text(main.read_text().replace("Hello, world!", "Hello, edited world!"))
    third = run_module("swift_build", args, diff=True)
    assert third["changed"] and third["products"]["hello"]["sha256"] != first["products"]["hello"]["sha256"]
    assert third["diff"]["before"] == {"hello": first["products"]["hello"]["sha256"]}
    assert subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.strip() \
        == "Hello, edited world!"
    assert run_module("swift_build", args)["changed"] is False

    # Another package built into the same output is built, whatever the folders the last build recorded hold.
    other = tmp_path / "other"
    shutil.copytree(hello_copy, other, ignore=shutil.ignore_patterns(".build"))
    other_main = other / "Sources" / "hello" / "main.swift"
    other_main.write_text(other_main.read_text().replace("Hello, edited world!", "Hello from the other package!"))
    moved = run_module("swift_build", {**args, "package_path": str(other)})
    assert moved["changed"] and not moved.get("failed"), moved.get("msg")
    assert subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.strip() \
        == "Hello from the other package!"

    # A file the user adds to the output makes it no longer only ours: refused before any build.
    (tmp_path / "out" / "notes.txt").write_text("mine")
    refused = run_module("swift_build", {**args, "force": True})
    assert refused.get("failed") and "notes.txt" in refused["msg"] and "\n" not in refused["msg"], refused
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine" and exe.is_file()


def test_check_mode_reports_a_build_and_writes_nothing(hello_copy, tmp_path):
    dest = tmp_path / "out"
    result = run_module("swift_build", {"package_path": str(hello_copy), "link_mode": "dynamic",
                                        "dest": str(dest)}, check_mode=True)
    assert result["changed"] and not result.get("failed")
    assert not dest.exists()


def test_only_the_selected_products_are_built(tmp_path):
    dest = tmp_path / "out"
    result = run_module("swift_build", {"package_path": str(FIXTURES / "multi-exec"), "products": ["greeter"],
                                        "link_mode": "static_stdlib", "dest": str(dest)})
    assert list(result["products"]) == ["greeter"]
    assert not (dest / "counter").exists()
    out = subprocess.run([str(dest / "greeter"), "Ops"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Hello, Ops! (shared 1.0.0)"


def test_size_options_and_no_strip(hello_copy, tmp_path):
    result = run_module("swift_build", {"package_path": str(hello_copy), "link_mode": "static_stdlib",
                                        "optimize_size": True, "lto": "full", "strip": False,
                                        "dest": str(tmp_path / "out")})
    product = result["products"]["hello"]
    assert product["debug_file"] is None and product["debug_size"] == 0
    assert not product["elf"]["stripped"] and product["size"] == product["unstripped_size"]
    assert subprocess.run([product["path"]], capture_output=True, text=True, check=True).stdout.strip() \
        == "Hello, world!"


# ---- bad inputs: one clear error each, nothing left behind ------------------------------------

def _fails(args: dict, *needles: str) -> dict:
    result = run_module("swift_build", args)
    assert result.get("failed"), result
    assert "Traceback" not in result["msg"] and "exception" not in result.get("module_stderr", "")
    for needle in needles:
        assert needle in result["msg"], result["msg"]
    return result


def test_missing_package_path(tmp_path):
    _fails({"package_path": str(tmp_path / "nope"), "dest": str(tmp_path / "out")}, "does not exist")
    assert not (tmp_path / "out").exists()


def test_directory_without_package_swift(tmp_path):
    _fails({"package_path": str(tmp_path), "dest": str(tmp_path / "out")}, "no Package.swift")


def test_unknown_product_lists_the_executables(tmp_path):
    _fails({"package_path": str(FIXTURES / "multi-exec"), "products": ["nope"], "dest": str(tmp_path / "o")},
           "no product nope", "greeter, counter")


def test_library_product_is_refused(tmp_path):
    _fails({"package_path": str(FIXTURES / "http-service"), "products": ["MiniHTTP"], "dest": str(tmp_path / "o")},
           "MiniHTTP is a library", "http-service")


def test_compile_error_shows_only_the_compiler_errors(hello_copy, tmp_path):
    (hello_copy / "Sources" / "hello" / "main.swift").write_text('let x: Int = "not a number"\nprint(y)\n')
    result = _fails({"package_path": str(hello_copy), "dest": str(tmp_path / "out")}, "swift build failed", "error:")
    lines = result["msg"].splitlines()
    assert len(lines) <= 21 and all("error" in line for line in lines[1:])
    assert "main.swift" in result["msg"] and "cannot find 'y'" in result["msg"]
    assert not (tmp_path / "out").exists()


def test_unknown_mode_names_the_valid_ones(tmp_path):
    _fails({"package_path": str(FIXTURES / "hello"), "link_mode": "semi_static", "dest": str(tmp_path / "o")},
           "link_mode", "static_executable, static_stdlib, dynamic")


def test_sdk_that_is_not_installed(tmp_path):
    installed = subprocess.run(["swift", "sdk", "list"], capture_output=True, text=True, env=tool_env(), check=True)
    assert "no-such-sdk" not in installed.stdout
    _fails({"package_path": str(FIXTURES / "hello"), "link_mode": "static_executable",
            "swift_sdk": "no-such-sdk", "dest": str(tmp_path / "o")},
           "Swift SDK no-such-sdk is not installed", "swift sdk install")


def test_dest_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    _fails({"package_path": str(FIXTURES / "hello"), "dest": str(blocker)}, "is not a directory")
    assert blocker.read_text() == "keep me"


def test_dest_holding_user_files_is_refused_before_building(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "report.pdf").write_text("keep me")
    _fails({"package_path": str(FIXTURES / "hello"), "dest": str(dest)}, str(dest), "report.pdf", "did not write")
    assert [p.name for p in dest.iterdir()] == ["report.pdf"] and (dest / "report.pdf").read_text() == "keep me"


@pytest.mark.parametrize("where", ["package", "parent", "sources", "target"])
def test_dest_that_is_the_package_or_its_sources_is_refused(tmp_path, where):
    # A product named Sources would have replaced the package's Sources folder with a binary.
    package = tmp_path / "pkg"
    (package / "Sources" / "app").mkdir(parents=True)
    (package / "Package.swift").write_text(
        '// swift-tools-version:5.9\nimport PackageDescription\nlet package = Package(name: "pkg", products: '
        '[.executable(name: "Sources", targets: ["app"])], targets: [.executableTarget(name: "app")])\n')
    (package / "Sources" / "app" / "main.swift").write_text('print("hi")\n')
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    dest = {"package": package, "parent": tmp_path, "sources": package / "Sources",
            "target": package / "Sources" / "app"}[where]
    result = _fails({"package_path": str(package), "dest": str(dest)}, "choose a dest outside")
    assert "\n" not in result["msg"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (package / "Sources" / "app" / "main.swift").read_text() == 'print("hi")\n'


@pytest.mark.parametrize(("extra", "needles"), [
    ({"build_args": ["--scratch-path", "/tmp/x"]}, ("build_args must not contain --scratch-path", "scratch_path")),
    ({"build_args": ["--config-path=/tmp/x"]}, ("build_args must not contain --config-path", "mirrors")),
    ({"mirrors": {"https://example.invalid/a.git": "/nonexistent/a"}},
     ("the mirror /nonexistent/a for https://example.invalid/a.git is not a directory",)),
])
def test_bad_dependency_options(tmp_path, extra, needles):
    _fails({"package_path": str(FIXTURES / "hello"), "dest": str(tmp_path / "o"), **extra}, *needles)
    assert not (tmp_path / "o").exists()


def test_dest_that_cannot_be_written(tmp_path):
    # /proc refuses new directories even for root, so this fails the same way for every user.
    _fails({"package_path": str(FIXTURES / "hello"), "link_mode": "dynamic", "force": True,
            "dest": "/proc/swiftlinux-out"}, "/proc/swiftlinux-out", "writable")
