"""make bench: one driver measuring what the image toolkit claims, written to docs/benchmarks.md, a JSON file and
PNG charts (matplotlib) in one run.

Sections (each figure gives the machine, the median and min-max over the repeated runs):
1. sizes: per link mode for hello, http-service and foundation-service, the program (unstripped, stripped), the
   SE-0342 bag, our image (whole and the bytes unique to the service), beside two conventional images built in the
   same run (Debian minbase + ca-certificates + tzdata + the static_stdlib program; the same base + the Swift
   runtime + the dynamic program) and SE-0342's published figures;
2. start-up: exec to exit of hello in each mode and of a static and a dynamic C hello; container start to the
   first passing probe of http-service per recipe and in the conventional image;
3. toolkit: binary to image loaded in the local engine and pushed to a registry on 127.0.0.1, cold and warm layer
   cache, against `docker build --no-cache` (and `docker push`) of the same files; gzip against zstd; the bytes a
   code-only release moves, for an image and for a bag;
4. reproducibility: identical inputs give identical digests per recipe; one rebuild of the Swift program from a
   clean scratch folder;
5. delivery: ship.yml's first run against its idempotent re-run on systemd test hosts (time, changed count), and the
   bytes each host receives for a code-only release of a bag, pulled from the registry and uploaded;
6. fleet: a first deploy and an unchanged re-run on 1, 4 and 8 hosts for each delivery, with the round-trips per
   host and where the CPU went (bench/fleet.py, also written to fleet-benchmark.md).

The module's own time is build_image() called in-process; an `ansible` run of oci_image is timed too, and the
difference is reported as interpreter and ansible start-up. Benchmarks only: no time is ever asserted.
Run: make bench  (or make bench BENCH_ARGS="--quick --out DIR": one run each, for a smoke test)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import docker
import jinja2

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))
sys.path.insert(0, str(BENCH.parent / "tests" / "integration"))
sys.path.insert(0, str(BENCH.parent / ".build" / "collections"))
sys.path.insert(0, str(BENCH))
from conftest import _start_registry, _stop  # noqa: E402
from sizes import swift_bag_size  # noqa: E402
from support import FIXTURES as FIXTURE_DIR  # noqa: E402
from support import REPO, SYSTEMD_HOST, built_fixture, run_module, run_playbook, tool_env  # noqa: E402

from ansible_collections.swiftlinux.deploy.plugins.module_utils._image_build import build_image  # noqa: E402
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import Registry  # noqa: E402
from ansible_collections.swiftlinux.deploy.plugins.modules.oci_image import ARGUMENT_SPEC  # noqa: E402

FIXTURES = {"hello": "hello", "http-service": "http-service", "foundation-service": "foundation-service"}
MODES = ("static_executable", "static_stdlib", "dynamic")
PREFIX = "swiftlinux-bench/"
CONVENTIONAL_BASE = PREFIX + "debian-minbase:bookworm"
EPOCH = 1700000000
SE0342 = {"dynamic_program": 17 * 10**3, "swift_bag": 42 * 10**6, "static_stdlib_program": 35 * 10**6}
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


# ---- small helpers ------------------------------------------------------------------------------

def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def timed(action, *args, **kwargs) -> float:
    start = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - start


def mib(size: float) -> str:
    return f"{size / 2**20:.2f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def seconds(value: dict) -> str:
    unit, scale = ("ms", 1000) if value["median"] < 1 else ("s", 1)
    return (f"{value['median'] * scale:.{1 if unit == 's' else 2}f} {unit} "
            f"({value['min'] * scale:.{1 if unit == 's' else 2}f}-{value['max'] * scale:.{1 if unit == 's' else 2}f})")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    swift = built_fixture("hello", "dynamic")["swift_version"]
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "arch": platform.machine(),
            "docker": docker.from_env().version()["Version"], "swift": swift, "python": platform.python_version(),
            "load_at_start": os.getloadavg()[0]}


def machine_line(info: dict) -> str:
    return (f"{info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, Docker {info['docker']}, "
            f"Swift {info['swift']}")


def image_params(**overrides) -> dict:
    """oci_image's options with their defaults, as AnsibleModule would pass them, plus `overrides`."""
    params = {name: spec.get("default") for name, spec in ARGUMENT_SPEC.items()}
    params.update(source_date_epoch=EPOCH, layer_cache="")
    params.update(overrides)
    for key, value in list(params.items()):
        if ARGUMENT_SPEC.get(key, {}).get("type") == "path" and isinstance(value, str) and value:
            params[key] = os.path.expanduser(value)
    return params


def run_command(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, env=tool_env(), check=False)
    return proc.returncode, proc.stdout, proc.stderr


def build(**overrides) -> dict:
    """build_image in this process: the module's own work, without interpreter and ansible start-up."""
    return build_image(image_params(**overrides), run_command, False)


def product(fixture: str, mode: str) -> dict:
    return built_fixture(fixture, mode)["products"][FIXTURES[fixture]]


def code_only_copy(path: str, work: Path, marker: str) -> str:
    """A copy of an executable with a few bytes appended: a stand-in for a code-only change (the loader ignores
    bytes past the last segment), with the swift_build.json and backtracer beside it like a real build."""
    directory = work / f"code-only-{marker}"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / Path(path).name
    shutil.copyfile(path, target)
    with open(target, "ab") as handle:
        handle.write(f"\0swiftlinux-bench-{marker}\0".encode())
    target.chmod(0o755)
    for beside in ("swift_build.json", "swift-backtrace-static"):
        if (Path(path).parent / beside).exists():
            shutil.copyfile(Path(path).parent / beside, directory / beside)
    return str(target)


def render_context(work: Path, params: dict) -> Path:
    """The build context oci_image writes for the Docker builder, with the image role's Containerfile rendered."""
    context = work / "context"
    result = build(**{**params, "format": "context", "dest": str(context), "push": False})
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(REPO / "roles" / "image" / "templates")),
                             trim_blocks=True, keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    template = env.get_template(f"{result['plan']['recipe']}.Containerfile.j2")
    (context / "Containerfile").write_text(template.render(image_plan=result))
    return context


def docker_build(client, context: Path, tag: str, buildargs: dict | None = None):
    image, _logs = client.images.build(path=str(context), dockerfile="Containerfile", tag=tag, pull=False,
                                       nocache=True, rm=True, buildargs=buildargs or {})
    return image


# ---- conventional images ------------------------------------------------------------------------

def conventional_base(client) -> None:
    """Debian bookworm minbase + ca-certificates + tzdata, made once with debootstrap and `docker import`."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(CONVENTIONAL_BASE)
        return
    mirror = subprocess.run(["bash", "-c", f". {REPO}/scripts/lib.sh; debian_mirror"], capture_output=True,
                            text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as work:
        rootfs = Path(work) / "rootfs"
        print(f"debootstrap bookworm minbase + ca-certificates, tzdata from {mirror} (about 40 s)", flush=True)
        subprocess.run(["debootstrap", "--variant=minbase", "--include=ca-certificates,tzdata", "bookworm",
                        str(rootfs), mirror], check=True, capture_output=True)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        tarball = Path(work) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        with open(tarball, "rb") as stream:
            client.api.import_image(src=stream, repository=CONVENTIONAL_BASE.split(":", maxsplit=1)[0], tag="bookworm")


def conventional_image(client, work: Path, fixture: str, mode: str) -> dict:
    """The shape of the Vapor and Hummingbird Dockerfile templates: the program (static_stdlib) on Debian, or the
    dynamic program with the toolchain's Swift runtime copied beside it on the same Debian."""
    built = product(fixture, mode)
    context = work / f"conventional-{fixture}-{mode}"
    context.mkdir(parents=True)
    name = Path(built["path"]).name
    shutil.copy2(built["path"], context / name)
    lines = [f"FROM {CONVENTIONAL_BASE}", f"COPY {name} /app/{name}"]
    if mode == "dynamic":
        runtime = context / "swift"
        runtime.mkdir()
        for library in Path("/opt/swift/usr/lib/swift/linux").glob("*.so"):
            if not re.search(r"XCTest|Testing|_InternalSwiftStaticMirror", library.name):
                shutil.copy2(library, runtime / library.name)
        lines.insert(1, "COPY swift/ /usr/lib/swift/linux/")
        lines.append("ENV LD_LIBRARY_PATH=/usr/lib/swift/linux")
    elif built.get("backtracer"):
        shutil.copy2(built["backtracer"], context / "swift-backtrace-static")
        lines.append("COPY swift-backtrace-static /app/swift-backtrace-static")
    for bundle in built["resources"]:
        shutil.copytree(bundle, context / Path(bundle).name, symlinks=True)
        lines.append(f"COPY {Path(bundle).name} /app/{Path(bundle).name}")
    lines += ["USER 65532", f'ENTRYPOINT ["/app/{name}"]']
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    tag = f"{PREFIX}conventional-{fixture}-{mode.replace('_', '-')}"
    image, _logs = client.images.build(path=str(context), tag=tag, pull=False, rm=True)
    base = client.images.get(CONVENTIONAL_BASE).attrs["Size"]
    return {"reference": tag, "total": image.attrs["Size"], "unique": image.attrs["Size"] - base, "base": base}


# ---- 1. sizes -----------------------------------------------------------------------------------

def section_sizes(client, work: Path, runtime_base: dict) -> dict:
    conventional_base(client)
    rows = []
    for fixture in FIXTURES:
        for mode in MODES:
            built = product(fixture, mode)
            row = {"fixture": fixture, "mode": mode, "unstripped": built["unstripped_size"], "stripped": built["size"],
                   "debug": built["debug_size"], "ca_bundle": os.path.getsize(CA_BUNDLE)}
            if mode == "dynamic":
                row["se0342_bag"] = swift_bag_size(built["path"])
            variants = {"backtrace": {}, "no backtrace": {"backtrace": False}} if mode != "dynamic" else \
                {"on the shared runtime base": {"base": str(runtime_base["layout"])}}
            images = {}
            for label, extra in variants.items():
                common = dict(executable=built["path"], resources=built["resources"], name=PREFIX + fixture,
                              compression="none", format="oci-layout", **extra)
                plain = build(**common, dest=str(work / f"size-{fixture}-{mode}-{label}"))
                if "base" in extra:  # the base's blobs as a registry stores them too
                    common["base"] = str(runtime_base["gzip_layout"])
                gzipped = build(**{**common, "compression": "gzip"}, dest=str(work / f"gz-{fixture}-{mode}-{label}"))
                by_role = {}
                for layer in plain["layers"]:
                    by_role[layer["role"]] = by_role.get(layer["role"], 0) + layer["size"]
                images[label] = {"recipe": plain["recipe"], "total": plain["size"], "gzip_total": gzipped["size"],
                                 "unique": by_role.get("app", 0),
                                 "unique_gzip": sum(l["size"] for l in gzipped["layers"] if l["role"] == "app"),
                                 "layers": by_role}
            row["images"] = images
            if mode in ("static_stdlib", "dynamic"):
                row["conventional"] = conventional_image(client, work, fixture, mode)
            rows.append(row)
            print(f"sizes: {fixture} {mode} done", flush=True)
    return {"rows": rows, "runtime_base": {"total": runtime_base["total"], "gzip_total": runtime_base["gzip_total"]},
            "se0342": SE0342}


# ---- 2. start-up ---------------------------------------------------------------------------------

C_HELLO = '#include <stdio.h>\nint main(void) { puts("Hello, world!"); return 0; }\n'


def exec_to_exit(argv: list[str], runs: int) -> dict:
    env = tool_env()
    samples = []
    for _run in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True)
        samples.append(time.perf_counter() - start)
    return stats(samples)


def start_to_probe(client, reference: str, runs: int) -> dict:
    samples = []
    for run in range(runs):
        port = free_port()
        start = time.perf_counter()
        box = client.containers.run(reference, command=["--bind", "127.0.0.1", "--port", str(port)],
                                    name=f"swiftlinux-bench-probe-{os.getpid()}-{run}", network_mode="host",
                                    read_only=True, cap_drop=["ALL"], user="65532:65532", detach=True,
                                    labels={"swiftlinux.bench": "1"})
        try:
            deadline = start + 30
            while time.perf_counter() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as reply:
                        if reply.status == 200:
                            break
                except OSError:
                    time.sleep(0.005)
            else:
                raise SystemExit(f"{reference} never answered /health:\n{box.logs().decode(errors='replace')}")
            samples.append(time.perf_counter() - start)
        finally:
            box.remove(force=True)
    return stats(samples)


def section_startup(client, work: Path, runtime_base: dict, quick: bool, conventional: dict) -> dict:
    runs = 20 if quick else 200
    source = work / "hello.c"
    source.write_text(C_HELLO)
    subprocess.run(["cc", "-O2", "-static", "-o", str(work / "c-hello-static"), str(source)], check=True)
    subprocess.run(["cc", "-O2", "-o", str(work / "c-hello-dynamic"), str(source)], check=True)
    programs = {f"hello {mode}": [product("hello", mode)["path"]] for mode in MODES}
    programs["C hello static"] = [str(work / "c-hello-static")]
    programs["C hello dynamic"] = [str(work / "c-hello-dynamic")]
    execs = {label: exec_to_exit(argv, runs) for label, argv in programs.items()}
    print("start-up: exec done", flush=True)

    probe_runs = 1 if quick else 10
    containers = {}
    for mode in MODES:
        built = product("http-service", mode)
        extra = {"base": str(runtime_base["archive"])} if mode == "dynamic" else {}
        archive = work / f"probe-{mode}.tar"
        result = build(executable=built["path"], name=PREFIX + "probe", tag=mode.replace("_", "-"), format="archive",
                       dest=str(archive), **extra)
        client.images.load(archive.read_bytes())
        containers[f"{result['recipe']} ({mode})"] = start_to_probe(client, result["reference"], probe_runs)
    for mode in ("static_stdlib", "dynamic"):
        containers[f"conventional ({mode} on Debian)"] = start_to_probe(
            client, conventional[f"http-service/{mode}"], probe_runs)
    return {"exec_to_exit": execs, "start_to_probe": containers}


# ---- 3. toolkit overhead ----------------------------------------------------------------------------

def section_toolkit(client, work: Path, registry: str, quick: bool) -> dict:
    runs = 1 if quick else 5
    built = product("http-service", "static_executable")
    results = {}

    def fresh_cache(tag: str) -> str:
        directory = work / f"cache-{tag}"
        shutil.rmtree(directory, ignore_errors=True)
        return str(directory)

    warm_cache = str(work / "cache-warm")
    build(executable=built["path"], name=PREFIX + "warm", compression="gzip", layer_cache=warm_cache,
          dest=str(work / "warm-layout"))
    build(executable=built["path"], name=PREFIX + "warm", compression="zstd", layer_cache=warm_cache,
          dest=str(work / "warm-layout-zstd"))

    loaded = {"module, cold cache": [], "module, warm cache, code-only change": [], "docker build --no-cache": []}
    pushed = {"module gzip, cold cache": [], "module gzip, warm cache, code-only change": [],
              "module zstd, cold cache": [], "module zstd, warm cache, code-only change": [],
              "docker build --no-cache + docker push": []}
    pushed_bytes = {}
    for run in range(runs):
        changed = code_only_copy(built["path"], work, f"run{run}")
        archive = work / f"loaded-{run}.tar"
        common = dict(name=PREFIX + "toolkit", tag=f"run{run}", format="archive", dest=str(archive))
        for label, executable, cache in (("module, cold cache", built["path"], fresh_cache(f"l{run}")),
                                         ("module, warm cache, code-only change", changed, warm_cache)):
            start = time.perf_counter()
            result = build(executable=executable, layer_cache=cache, **common)
            client.images.load(archive.read_bytes())
            loaded[label].append(time.perf_counter() - start)
            archive.unlink()
        context = render_context(work / f"ctx-{run}", dict(executable=built["path"], name=PREFIX + "toolkit"))
        plan = json.loads((context / "image.json").read_text())["plan"]
        loaded["docker build --no-cache"].append(
            timed(docker_build, client, context, f"{PREFIX}toolkit:docker{run}", plan["build_args"]))

        for compression in ("gzip", "zstd"):
            repo = f"{registry}/{PREFIX}push-{compression}-{run}"
            for label, executable, cache in ((f"module {compression}, cold cache", built["path"],
                                              fresh_cache(f"p{compression}{run}")),
                                             (f"module {compression}, warm cache, code-only change", changed,
                                              warm_cache)):
                start = time.perf_counter()
                result = build(executable=executable, name=repo, tag="v1" if "cold" in label else "v2", push=True,
                               compression=compression, layer_cache=cache)
                pushed[label].append(time.perf_counter() - start)
                pushed_bytes.setdefault(label, result["size"])
        repo = f"{registry}/{PREFIX}push-docker-{run}"
        start = time.perf_counter()
        docker_build(client, context, f"{repo}:v1", plan["build_args"])
        for _line in client.images.push(repo, tag="v1", stream=True):
            pass
        pushed["docker build --no-cache + docker push"].append(time.perf_counter() - start)
    results["loaded"] = {label: stats(values) for label, values in loaded.items()}
    results["pushed"] = {label: stats(values) for label, values in pushed.items()}
    results["image_bytes"] = pushed_bytes

    # Interpreter and ansible start-up: the same build through `ansible`, minus the module's own time.
    args = dict(executable=built["path"], name=PREFIX + "toolkit", tag="ansible", format="archive",
                source_date_epoch=EPOCH, layer_cache="", dest=str(work / "ansible.tar"))
    through_ansible, in_process = [], []
    for _run in range(runs):
        through_ansible.append(timed(run_module, "oci_image", args, through_ansible=True))
        (work / "ansible.tar").unlink()
        in_process.append(timed(build, **args))
        (work / "ansible.tar").unlink()
    results["ansible"] = {"through ansible": stats(through_ansible), "in-process": stats(in_process),
                          "start-up": statistics.median(through_ansible) - statistics.median(in_process)}
    results["release"] = code_only_release(work, registry, built)
    results["bag_release"] = bag_release(work, registry)
    return results


def code_only_release(work: Path, registry: str, built: dict) -> dict:
    """Bytes a code-only release uploads: release 1, then the same program changed, to the same repository."""
    repo = f"{registry}/{PREFIX}release"
    first = build(executable=built["path"], name=repo, tag="1", push=True, compression="gzip")
    second = build(executable=code_only_copy(built["path"], work, "release"), name=repo, tag="2", push=True,
                   compression="gzip")
    known = {layer["digest"] for layer in first["layers"]}
    moved = sum(layer["size"] for layer in second["layers"] if layer["digest"] not in known)
    manifest_and_config = second["size"] - sum(layer["size"] for layer in second["layers"])
    app = next(layer["size"] for layer in second["layers"] if layer["role"] == "app")
    return {"moved": moved + manifest_and_config, "app_layer": app, "image": second["size"],
            "ratio": (moved + manifest_and_config) / app}


def bag_release(work: Path, registry: str) -> dict:
    """Bytes a code-only release of a bag moves: http-service's dynamic program bagged (scope non-system), then the
    same program with a few bytes appended at the same path (a rebuild in place) bagged again, with
    SOURCE_DATE_EPOCH set. Pushed with release_push, as registry delivery ships a bag: only the program layer (the
    program with its bag.json and SBOM, which name its checksum) is new. Beside it, the bytes of the files that
    differ between the two bags, what a file-by-file copy of only the changed files would move."""
    built = product("http-service", "dynamic")
    source = work / "bag-source" / Path(built["path"]).name
    source.parent.mkdir()
    shutil.copyfile(built["path"], source)
    source.chmod(0o755)
    repository = f"{PREFIX}bag-release"
    bags, pushes = [], []
    with source_date_epoch(EPOCH):
        for marker in ("bag1", "bag2"):
            if marker == "bag2":
                with open(source, "ab") as handle:
                    handle.write(b"\0swiftlinux-bench-bag2\0")
            dest = work / marker
            result = run_module("shared_objects", {"executables": [str(source)], "dest": str(dest),
                                                   "scope": "non-system"})
            if result.get("failed"):
                raise SystemExit(f"shared_objects failed: {result['msg']}")
            pushed = run_module("release_push", {"path": str(dest), "name": f"{registry}/{repository}"})
            if pushed.get("failed"):
                raise SystemExit(f"release_push failed: {pushed['msg']}")
            bags.append({str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()})
            pushes.append(pushed)
    client = Registry(registry)
    manifest = len(client.request("GET", f"/v2/{repository}/manifests/{pushes[1]['digest']}",
                                  headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})[2])
    client.close()
    layer = next(layer["size"] for layer in pushes[1]["layers"] if layer["role"] == "program")
    moved = pushes[1]["uploaded_bytes"] + manifest
    program = source.stat().st_size
    differing = {name: len(data) for name, data in bags[1].items() if bags[0].get(name) != data}
    return {"moved": moved, "program_layer": layer, "ratio": moved / layer, "program": program,
            "bag": sum(len(d) for d in bags[1].values()), "runtime_layer": next(
                layer["size"] for layer in pushes[1]["layers"] if layer["role"] == "runtime"),
            "files_differing": differing, "files_moved": sum(differing.values()),
            "files_ratio": sum(differing.values()) / program}


@contextlib.contextmanager
def source_date_epoch(epoch: int):
    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = previous


# ---- 4. reproducibility ---------------------------------------------------------------------------------

def section_reproducibility(work: Path, runtime_base: dict) -> dict:
    recipes = {}
    for mode in MODES:
        built = product("http-service", mode)
        extra = {"base": str(runtime_base["layout"])} if mode == "dynamic" else {}
        digests = set()
        for attempt, cache in enumerate(("", str(work / "repro-cache"), str(work / "repro-cache"))):
            result = build(executable=built["path"], name=PREFIX + "repro", compression="gzip", layer_cache=cache,
                           dest=str(work / f"repro-{mode}-{attempt}"), **extra)
            digests.add(result["digest"])
        recipes[f"{result['recipe']} ({mode})"] = {"builds": 3, "digests": sorted(digests), "identical": len(digests) == 1}
    base_digests = {build(recipe="runtime-base", name=PREFIX + "swift-runtime", compression="gzip",
                          dest=str(work / f"repro-base-{n}"))["digest"] for n in range(2)}
    recipes["runtime-base (the base image)"] = {"builds": 2, "digests": sorted(base_digests),
                                                "identical": len(base_digests) == 1}
    # hello built twice from a clean scratch folder at one path, then compared with the cached build, whose scratch
    # folder is elsewhere (the package's own .build).
    rebuilds = []
    for attempt in range(2):
        shutil.rmtree(work / "rebuild-scratch", ignore_errors=True)
        rebuilt = run_module("swift_build", {"package_path": str(REPO / "tests" / "fixtures" / "hello"),
                                             "link_mode": "static_executable", "dest": str(work / f"rebuild-{attempt}"),
                                             "scratch_path": str(work / "rebuild-scratch")})
        if rebuilt.get("failed"):
            raise SystemExit(f"swift_build failed: {rebuilt['msg']}")
        rebuilds.append(rebuilt["products"]["hello"]["sha256"])
    cached = built_fixture("hello", "static_executable")["products"]["hello"]["sha256"]
    return {"images": recipes, "swift_rebuild": {"clean_scratch": rebuilds, "identical": rebuilds[0] == rebuilds[1],
                                                 "other_scratch_path": cached,
                                                 "identical_across_paths": cached == rebuilds[0]}}


# ---- 5. delivery ---------------------------------------------------------------------------------------

DELIVERY_HOSTS = "swiftlinux-bench-delivery-"
DELIVERY_SERVICE = "bench-delivery"


def delivery_hosts(client, count: int) -> list:
    """Bookworm test hosts with systemd as PID 1 on the host network (each serves on a port of its own and reaches
    the registry on 127.0.0.1), labelled for this bench, not for pytest."""
    hosts = []
    for index in range(count):
        name = f"{DELIVERY_HOSTS}{index}"
        for old in client.containers.list(all=True, filters={"name": f"^{name}$"}):
            old.remove(force=True)
        hosts.append(client.containers.run("swiftlinux-testhost:bookworm", name=name,
                                           tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
                                           **{**SYSTEMD_HOST, "network_mode": "host",
                                              "labels": {"swiftlinux.bench": "delivery"}}))
    for host in hosts:
        deadline = time.monotonic() + 90
        while host.exec_run("systemctl is-system-running --wait").output.decode().strip() not in (
                "running", "degraded"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{host.name} did not boot")
            time.sleep(0.5)
    return hosts


def delivery_inventory(hosts: list) -> dict:
    entries = {}
    for host in hosts:
        port = free_port()
        entries[host.name] = {"ansible_connection": "community.docker.docker",
                              "ansible_python_interpreter": "/usr/bin/python3",
                              "service_args": ["--bind", "127.0.0.1", "--port", str(port)], "service_port": port,
                              "service_probe": {"kind": "http", "port": port, "path": "/health", "retries": 20}}
    return {"all": {"hosts": entries, "vars": {"service_name": DELIVERY_SERVICE, "ship_link_mode": "bag-all"}}}


def play(playbook: str, inventory: dict, extra: dict) -> dict:
    """One ansible-playbook run (wall clock, start-up included): time, changed counts, and per host the bytes
    it received (the tar of the release sent by the controller, or blobs the release module pulled)."""
    start = time.perf_counter()
    result = run_playbook(REPO / "playbooks" / playbook, "localhost", extra, inventory=inventory, timeout=600)
    elapsed = time.perf_counter() - start
    if result.rc != 0:
        raise SystemExit(f"{playbook} failed: {result.failures or result.output[-3000:]}")
    hosts = list(inventory["all"]["hosts"])
    received = dict.fromkeys(hosts, 0)
    for play_report in result.report["plays"]:
        for task in play_report["tasks"]:
            name = task["task"]["name"]
            for host, outcome in task["hosts"].items():
                if host not in received:
                    continue
                if "verify it and switch to it" in name:  # the release task: one tar sent, or blobs pulled
                    received[host] += (outcome.get("uploaded_bytes") or 0) + (outcome.get("fetched_bytes") or 0)
    stats_by_host = result.report.get("stats", {})
    return {"seconds": elapsed, "changed_hosts": sum(stats_by_host.get(h, {}).get("changed", 0) for h in hosts),
            "changed_controller": stats_by_host.get("localhost", {}).get("changed", 0),
            "received": received}


def code_only_bag(work: Path, marker: str) -> Path:
    """http-service's scope-all bag made again around the dynamic program with a few bytes appended: a new
    release whose libraries are the ones the hosts already run."""
    built = product("http-service", "dynamic")
    dest = work / f"bag-{marker}"
    result = run_module("shared_objects", {"executables": [code_only_copy(built["path"], work, marker)],
                                           "resources": built["resources"], "scope": "all", "dest": str(dest)})
    if result.get("failed"):
        raise SystemExit(f"shared_objects failed: {result['msg']}")
    return dest


def section_delivery(client, work: Path, registry: str, quick: bool) -> dict:
    """ship.yml's first run against its re-run, with registry delivery (the controller pushes once, the systemd hosts
    pull by digest), then the bytes each host receives for a code-only release of the scope-all bag: pulled, and
    (not with --quick) uploaded by the controller as one tar."""
    hosts = delivery_hosts(client, 1 if quick else 2)
    inventory = delivery_inventory(hosts)
    ship = {"ship_package": str(FIXTURE_DIR / "http-service"), "ship_build_dir": str(work / "ship"),
            "ship_modes": ["dynamic"], "ship_bag_scopes": ["all"], "ship_report": False,
            "ship_registry": f"{registry}/{PREFIX}delivery"}
    try:
        first = play("ship.yml", inventory, ship)
        again = play("ship.yml", inventory, ship)
        print("delivery: ship.yml first run and re-run done", flush=True)
        code_only = code_only_bag(work, "pulled")
        releases = {"pulled": play("deploy.yml", inventory,
                                   {**ship, "ship_artifacts": [{"name": "bag-all", "path": str(code_only)}]})}
        if not quick:
            uploaded = {key: value for key, value in ship.items() if key != "ship_registry"}
            releases["uploaded"] = play("deploy.yml", inventory, {**uploaded, "ship_artifacts": [
                {"name": "bag-all", "path": str(code_only_bag(work, "uploaded"))}]})
        print("delivery: code-only releases done", flush=True)
    finally:
        for host in hosts:
            host.remove(force=True)
    program = os.path.getsize(code_only / "libexec" / "http-service")
    bag = sum(p.stat().st_size for p in code_only.rglob("*") if p.is_file() and not p.is_symlink())
    return {"hosts": len(hosts), "first": first, "again": again, "releases": releases, "program": program,
            "bag": bag}


# ---- charts and report --------------------------------------------------------------------------------

def charts(results: dict, out: Path) -> list[str]:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    subtitle = machine_line(results["machine"])
    written = []

    rows = results["sizes"]["rows"]
    labels, totals, uniques = [], [], []
    short = {"on the shared runtime base": "on runtime base"}
    for row in rows:
        for label, image in row["images"].items():
            labels.append(f"{row['fixture']} {row['mode']} {short.get(label, label)}")
            totals.append(image["total"] / 2**20)
            uniques.append(image["unique"] / 2**20)
        if "conventional" in row:
            labels.append(f"{row['fixture']} {row['mode']} conventional")
            totals.append(row["conventional"]["total"] / 2**20)
            uniques.append(row["conventional"]["unique"] / 2**20)
    fig, axis = plt.subplots(figsize=(max(10, len(labels) * 0.55), 7))
    positions = range(len(labels))
    axis.bar([p - 0.2 for p in positions], totals, 0.4, label="whole image (uncompressed)")
    axis.bar([p + 0.2 for p in positions], uniques, 0.4, label="bytes unique to the service")
    axis.set_xticks(list(positions), labels, fontsize=7, rotation=60, ha="right")
    axis.set_ylabel("MiB")
    axis.set_yscale("log")
    axis.legend()
    axis.set_title(f"Image sizes per link mode (one build each; sizes do not vary)\n{subtitle}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sizes.png", dpi=110)
    plt.close(fig)
    written.append("sizes.png")

    for name, title, data in (
            ("startup-exec.png", "exec to exit", results["startup"]["exec_to_exit"]),
            ("startup-container.png", "container start to first passing /health probe",
             results["startup"]["start_to_probe"]),
            ("toolkit-loaded.png", "binary to image loaded in the local engine", results["toolkit"]["loaded"]),
            ("toolkit-pushed.png", "binary to image pushed to a registry on 127.0.0.1", results["toolkit"]["pushed"])):
        names = list(data)
        medians = [data[n]["median"] * 1000 for n in names]
        low = [m - data[n]["min"] * 1000 for m, n in zip(medians, names)]
        high = [data[n]["max"] * 1000 - m for m, n in zip(medians, names)]
        fig, axis = plt.subplots(figsize=(9, 0.5 * len(names) + 1.8))
        axis.barh(names, medians, xerr=[low, high], capsize=3)
        for index, n in enumerate(names):
            axis.text(medians[index], index, f"  {medians[index]:.1f} ms", va="center", fontsize=7)
        runs = data[names[0]]["runs"]
        axis.set_xlabel(f"milliseconds: median, bars min-max over {runs} runs")
        axis.set_title(f"{title}\n{subtitle}", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)

    delivery = results.get("delivery", {})
    if "first" in delivery:
        runs = {"ship.yml first run": delivery["first"], "ship.yml re-run": delivery["again"]}
        runs.update({f"code-only release, {key}": run for key, run in delivery["releases"].items()})
        names = list(runs)
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 * len(names) + 2))
        left.barh(names, [run["seconds"] for run in runs.values()])
        left.set_xlabel("seconds (one run, ansible-playbook start-up included)")
        received = [max(run["received"].values()) / 2**10 for run in runs.values()]
        right.barh(names, [max(value, 0.001) for value in received])
        right.set_xscale("log")
        right.set_yticks(range(len(names)), [""] * len(names))
        right.set_xlabel("KiB each host received (log scale)")
        for index, value in enumerate(received):
            right.text(max(value, 0.001), index, f"  {value:,.0f} KiB" if value else "  0", va="center", fontsize=7)
        fig.suptitle(f"ship.yml to {delivery['hosts']} systemd host(s): first run, re-run, code-only releases\n"
                     f"{subtitle}", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "delivery.png", dpi=110)
        plt.close(fig)
        written.append("delivery.png")
    return written


def end_load(results: dict) -> str:
    value = results["machine"].get("load_at_end")
    return "" if value is None else f" and {value:.2f} at the end"


def report(results: dict, out: Path, doc: Path) -> None:
    rel = os.path.relpath(out, doc.parent)
    sizes, startup, toolkit, repro = (results[k] for k in ("sizes", "startup", "toolkit", "reproducibility"))
    lines = ["# Benchmarks: images, start-up, toolkit, reproducibility", "",
             f"Written by `make bench` (bench/run.py) on {results['date']}{' with --quick (one run each)' if results['quick'] else ''}.",
             f"Machine: {machine_line(results['machine'])}; load average {results['machine']['load_at_start']:.2f} at "
             f"the start{end_load(results)} (the machine may be shared). Times are median (min-max) over the runs "
             f"given; sizes are exact. Raw numbers: [benchmarks.json](benchmarks.json).", "",
             "## 1. Sizes", "",
             "*Whole* is the image's uncompressed layers and config (what `docker load` unpacks); *gzip* what a "
             "registry stores; *unique* the application layer, the only bytes not shared with another service's "
             "image built with the same toolchain. The conventional images are built in the same run: Debian "
             "bookworm minbase + ca-certificates + tzdata with the `static_stdlib` program (and its backtracer), "
             "and the same base with the Swift runtime and the `dynamic` program.", "",
             f"SE-0342's published figures for hello world: {SE0342['dynamic_program'] // 1000} KB program + "
             f"{SE0342['swift_bag'] // 10**6} MB Swift bag (dynamic) against {SE0342['static_stdlib_program'] // 10**6} "
             f"MB with `--static-swift-stdlib`.", "",
             f"![sizes]({rel}/sizes.png)", "",
             "| fixture | mode | unstripped | stripped | SE-0342 bag | image | whole | gzip | unique | unique / stripped | whole / (program + CA) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in sizes["rows"]:
        for label, image in row["images"].items():
            shared_base = image["recipe"] == "runtime-base"  # the whole is mostly the base every service shares
            lines.append(
                f"| {row['fixture']} | {row['mode']} | {mib(row['unstripped'])} | {mib(row['stripped'])} | "
                f"{mib(row['se0342_bag']) if 'se0342_bag' in row else '—'} | {image['recipe']}, {label} | "
                f"{mib(image['total'])} | {mib(image['gzip_total'])} | "
                f"{mib(image['unique'])} | {image['unique'] / row['stripped']:.3f}× | "
                f"{'—' if shared_base else '%.2f×' % (image['total'] / (row['stripped'] + row['ca_bundle']))} |")
        if "conventional" in row:
            conv = row["conventional"]
            lines.append(f"| {row['fixture']} | {row['mode']} | | | | conventional (Debian) | {mib(conv['total'])} | | "
                         f"{mib(conv['unique'])} | {conv['unique'] / row['stripped']:.3f}× | "
                         f"{conv['total'] / (row['stripped'] + row['ca_bundle']):.2f}× |")
    hello = next(r for r in sizes["rows"] if r["fixture"] == "hello" and r["mode"] == "dynamic")
    sst = next(r for r in sizes["rows"] if r["fixture"] == "hello" and r["mode"] == "static_stdlib")
    lines += ["", f"A `dynamic` service's unique bytes are its program and its SBOM; the rest of its image is the "
              f"shared Swift runtime base ({mib(sizes['runtime_base']['total'])}, {mib(sizes['runtime_base']['gzip_total'])} "
              f"gzip), stored once per host or registry for every service of that toolchain.", "",
              f"Here hello is {mib(hello['stripped'])} dynamic + {mib(hello['se0342_bag'])} Swift bag "
              f"({hello['se0342_bag'] / SE0342['swift_bag']:.2f}× SE-0342's bag), against {mib(sst['stripped'])} "
              f"with `--static-swift-stdlib` ({sst['stripped'] / SE0342['static_stdlib_program']:.2f}× SE-0342's).", "",
              "## 2. Start-up", "",
              f"![exec]({rel}/startup-exec.png)", "", f"![containers]({rel}/startup-container.png)", "",
              "| program | exec to exit |", "|---|---|"]
    lines += [f"| {label} | {seconds(value)} |" for label, value in startup["exec_to_exit"].items()]
    lines += ["", "| http-service image | container start to first passing probe |", "|---|---|"]
    lines += [f"| {label} | {seconds(value)} |" for label, value in startup["start_to_probe"].items()]
    loaded, pushed = toolkit["loaded"], toolkit["pushed"]
    docker_loaded = loaded["docker build --no-cache"]["median"]
    lines += ["", "## 3. Toolkit overhead", "",
              "http-service (`static_executable`, scratch-static with the backtracer). *Module* is the module's own "
              "work (build_image in-process: plan, layers, archive or push), plus `docker load` for *loaded*; "
              "*cold* starts with an empty layer cache, *warm* rebuilds after a code-only change with the cache "
              "filled. Docker builds the same files from the context oci_image writes (classic builder, "
              "`--no-cache`).", "",
              f"![loaded]({rel}/toolkit-loaded.png)", "", f"![pushed]({rel}/toolkit-pushed.png)", "",
              "| binary to image loaded | time | × docker build |", "|---|---|---|"]
    lines += [f"| {label} | {seconds(v)} | {v['median'] / docker_loaded:.2f} |" for label, v in loaded.items()]
    docker_pushed = pushed["docker build --no-cache + docker push"]["median"]
    lines += ["", "| binary to image pushed | time | × docker build + push | image bytes |", "|---|---|---|---|"]
    lines += [f"| {label} | {seconds(v)} | {v['median'] / docker_pushed:.2f} | "
              f"{mib(toolkit['image_bytes'][label]) if label in toolkit['image_bytes'] else ''} |"
              for label, v in pushed.items()]
    ansible = toolkit["ansible"]
    release, bag = toolkit["release"], toolkit["bag_release"]
    lines += ["", f"Interpreter and ansible start-up, reported apart: one `ansible -m swiftlinux.deploy.oci_image` run "
              f"takes {seconds(ansible['through ansible'])} against {seconds(ansible['in-process'])} for the same "
              f"build in-process, so start-up is about {ansible['start-up']:.2f} s.", "",
              f"A code-only release pushes {mib(release['moved'])} (manifest, config and the app layer) for an image "
              f"of {mib(release['image'])}: {release['ratio']:.3f}× the {mib(release['app_layer'])} program layer. "
              f"For a bag (http-service dynamic, scope non-system, rebuilt in place), `release_push` uploads "
              f"{mib(bag['moved'])} (manifest, config and the program layer) for a bag of {mib(bag['bag'])}: "
              f"{bag['ratio']:.3f}× the {mib(bag['program_layer'])} program layer, which holds the "
              f"{mib(bag['program'])} program with the bag.json and SBOM that name its checksum (the "
              f"{mib(bag['runtime_layer'])} runtime layer is already there). Copied file by file, the files that "
              f"differ ({', '.join(sorted(bag['files_differing']))}) come to {mib(bag['files_moved'])}: "
              f"{bag['files_ratio']:.3f}× the program alone, since bag.json and the SBOM change whole.",
              "", "## 4. Reproducibility", "", "| recipe | builds | identical digests |", "|---|---|---|"]
    lines += [f"| {label} | {value['builds']} | {'yes' if value['identical'] else 'NO: ' + ', '.join(value['digests'])} |"
              for label, value in repro["images"].items()]
    rebuild = repro["swift_rebuild"]
    first, second = (digest[:16] + "…" for digest in rebuild["clean_scratch"])
    path_note = "" if rebuild["identical_across_paths"] else (
        ": the build path reaches the binary (a few bytes of data, hence the build-id, and the debug file, hence "
        "the .gnu_debuglink CRC), so reproducing a binary needs the same scratch path")
    lines += ["", f"hello (`static_executable`) rebuilt twice from a clean scratch folder at the same path: the "
              f"stripped binaries are {'identical' if rebuild['identical'] else 'DIFFERENT'} "
              f"(sha256 {first}{'' if rebuild['identical'] else ' and ' + second}). Against the cached build, whose "
              f"scratch folder is at another path, they are "
              f"{'identical' if rebuild['identical_across_paths'] else 'different'}{path_note}.", "",
              "## 5. Delivery", ""]
    lines += delivery_lines(results["delivery"])
    if "first" in results["delivery"]:
        lines += [f"![delivery]({rel}/delivery.png)", ""]
    lines += ["The container role's archive and registry deliveries are timed by `make bench-deploy` in "
              "[deploy-benchmark.md](deploy-benchmark.md), Lambda cold starts by `make bench-lambda` in "
              "[lambda-benchmark.md](lambda-benchmark.md).", ""]
    lines += fleet_lines(results.get("fleet"), doc.parent)
    doc.write_text("\n".join(lines))


def section_fleet(out: Path, quick: bool) -> dict:
    """Section 6: a first deploy and an unchanged re-run of the service role (docker connection, SSH, registry pull)
    and the container role on 1, 4 and 8 fresh hosts (bench/fleet.py, which also writes OUT/fleet-benchmark.md with
    its discussion, JSON and chart); --quick: one host over the docker connection."""
    from fleet import DELIVERIES, measure, write_report  # bench/fleet.py, beside this file

    sizes, deliveries = ([1], ["service-docker"]) if quick else ([1, 4, 8], list(DELIVERIES))
    runs = measure(sizes, deliveries, 1)
    write_report(runs, out)
    return {"runs": runs}


def fleet_lines(fleet: dict | None, out: Path) -> list[str]:
    """Section 6 of the report: the fleet table and chart (bench/fleet.py's rows)."""
    lines = ["## 6. Fleet", ""]
    if not fleet:  # a JSON written before the section measured
        return lines + ["Not measured in this run.", ""]
    from fleet import TABLE_HEAD, table_rows  # bench/fleet.py, beside this file

    return lines + [
        "The first deploy and the unchanged re-run of the service role (docker connection, SSH, registry pull) and the "
        "container role, with the round-trips per host; where the CPU went, and the discussion, are in "
        "[fleet-benchmark.md](fleet-benchmark.md).", "",
        f"![fleet]({os.path.relpath(out / 'fleet-benchmark.png', out)})", "", *TABLE_HEAD, *table_rows(fleet["runs"]),
        ""]


def delivery_lines(delivery: dict) -> list[str]:
    """Section 5 of the report: ship.yml first run against re-run, and bytes per host for a code-only release."""
    if "first" not in delivery:  # a JSON written before the section existed
        return ["Not measured in this run.", ""]
    hosts = delivery["hosts"]
    first, again = delivery["first"], delivery["again"]

    def per_host(run: dict) -> str:
        values = sorted(set(run["received"].values()))
        return " / ".join(mib(value) if value else "0" for value in values)

    lines = [f"`playbooks/ship.yml` (build, then deploy; the report stage off) ships http-service's `dynamic` build "
             f"as a scope-all bag to {hosts} bookworm systemd host{'s' if hosts > 1 else ''} (docker connection), "
             f"with registry delivery: the controller pushes the release once to Debian's docker-registry on "
             f"127.0.0.1 and each host pulls it by digest. One run each; wall-clock times include ansible-playbook's "
             f"start-up.", "",
             "| run | time | changed (hosts) | changed (controller) | bytes each host received |", "|---|---|---|---|---|",
             f"| ship.yml, first run | {first['seconds']:.1f} s | {first['changed_hosts']} | "
             f"{first['changed_controller']} | {per_host(first)} |",
             f"| ship.yml, re-run | {again['seconds']:.1f} s | {again['changed_hosts']} | {again['changed_controller']} "
             f"| {per_host(again)} |"]
    labels = {"pulled": "deploy.yml, code-only release, pulled from the registry",
              "uploaded": "deploy.yml, code-only release, uploaded by the controller (no registry)"}
    for key, run in delivery["releases"].items():
        lines.append(f"| {labels[key]} | {run['seconds']:.1f} s | {run['changed_hosts']} | "
                     f"{run['changed_controller']} | {per_host(run)} |")
    pulled = delivery["releases"]["pulled"]
    received = max(pulled["received"].values())
    lines += ["", f"The re-run is {again['seconds'] / first['seconds']:.2f}× the first run's time. For the code-only "
              f"release (the same bag, {mib(delivery['bag'])}, around a {mib(delivery['program'])} program with a few "
              f"bytes appended), each host pulled {mib(received)}: the release's program layer (program, bag.json "
              f"and SBOM), not the runtime layer its blob cache already held."]
    if "uploaded" in delivery["releases"]:
        uploaded = max(delivery["releases"]["uploaded"]["received"].values())
        lines[-1] += (f" Uploaded by the controller, the whole new release goes to each host as one tar: {mib(uploaded)}, "
                      f"{uploaded / max(received, 1):.0f}× the pull.")
    return lines + [""]


def remove_bench_images(client) -> None:
    """Every image this run tagged, keeping the debootstrapped conventional base for the next run."""
    for image in client.images.list():
        for tag in image.tags:
            if (tag.startswith(PREFIX) or "/" + PREFIX in tag) and tag != CONVENTIONAL_BASE:
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(tag, force=True)


def runtime_base_images(work: Path) -> dict:
    layout = build(recipe="runtime-base", name=PREFIX + "swift-runtime", compression="none", dest=str(work / "rt"))
    archive = build(recipe="runtime-base", name=PREFIX + "swift-runtime", format="archive",
                    dest=str(work / "rt.tar"))
    gzipped = build(recipe="runtime-base", name=PREFIX + "swift-runtime", compression="gzip", dest=str(work / "rt-gz"))
    return {"layout": work / "rt", "gzip_layout": work / "rt-gz", "archive": work / "rt.tar", "total": layout["size"],
            "gzip_total": gzipped["size"], "reference": archive["reference"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one run of everything: a smoke test, not a benchmark")
    parser.add_argument("--out", default=str(REPO / "docs"),
                        help="directory for benchmarks.md, benchmarks.json and benchmarks/*.png (default docs/)")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: write the report and charts again from OUT/benchmarks.json")
    options = parser.parse_args()
    out_doc = Path(options.out)
    figures = out_doc / "benchmarks"
    figures.mkdir(parents=True, exist_ok=True)
    if options.render:
        results = json.loads((out_doc / "benchmarks.json").read_text())
        charts(results, figures)
        report(results, figures, out_doc / "benchmarks.md")
        return 0
    client = docker.from_env()
    work = Path(tempfile.mkdtemp(prefix="swiftlinux-bench-"))
    proc, registry = _start_registry(work / "registry", None)
    started = time.monotonic()
    try:
        results = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "quick": options.quick}
        base = runtime_base_images(work)
        client.images.load(base["archive"].read_bytes())
        results["sizes"] = section_sizes(client, work, base)
        conventional = {f"{r['fixture']}/{r['mode']}": r["conventional"]["reference"]
                        for r in results["sizes"]["rows"] if "conventional" in r}
        results["startup"] = section_startup(client, work, base, options.quick, conventional)
        results["toolkit"] = section_toolkit(client, work, registry, options.quick)
        results["reproducibility"] = section_reproducibility(work, base)
        results["delivery"] = section_delivery(client, work, registry, options.quick)
        results["fleet"] = section_fleet(out_doc, options.quick)
        results["seconds"] = time.monotonic() - started
        results["machine"]["load_at_end"] = os.getloadavg()[0]
        (out_doc / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
        names = charts(results, figures)
        report(results, figures, out_doc / "benchmarks.md")
    finally:
        _stop(proc)
        remove_bench_images(client)
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out_doc / 'benchmarks.md'}, benchmarks.json and {len(names)} charts in "
          f"{time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
