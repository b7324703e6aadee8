"""Measure minimal image sizes per link mode against a conventional image, and time both builders.

Writes docs/images-benchmark.md. In one run it:
- builds every fixture's images with swiftlinux.deploy.oci_image (the recipe picked from the ELF facts; dynamic
  builds both on the shared runtime base and in scratch with their scope-all bag);
- builds the conventional image the Vapor/Hummingbird templates use: Debian minbase with ca-certificates and
  tzdata (debootstrap, cached as swiftlinux-bench/debian-minbase:bookworm) plus the static_stdlib binary;
- times the daemonless build (oci_image, archive) against `docker build` of the same content (same files, from
  the build context oci_image writes; classic builder, no cache), median of RUNS runs.
Run: .venv/bin/python bench/images.py   (needs the Docker engine and debootstrap; nothing is pulled)
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import jinja2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import REPO, built_fixture, run_module  # noqa: E402

FIXTURES = {"hello": "hello", "http-service": "http-service", "foundation-service": "foundation-service",
            "resources": "resource-reader", "networking": "networking-service"}
IMPOSSIBLE = {("networking", "static_executable")}
CONVENTIONAL_BASE = "swiftlinux-bench/debian-minbase:bookworm"
PREFIX = "swiftlinux-bench/"
RUNS = 3


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def oci_image(args: dict) -> dict:
    result = run_module("oci_image", args)
    if result.get("failed"):
        raise SystemExit(f"oci_image failed: {result['msg']}")
    return result


def conventional_base(client: docker.DockerClient) -> None:
    """Debian bookworm minbase + ca-certificates + tzdata, built once with debootstrap and `docker import`."""
    try:
        client.images.get(CONVENTIONAL_BASE)
        return
    except docker.errors.ImageNotFound:
        pass
    mirror = subprocess.run(["bash", "-c", f". {REPO}/scripts/lib.sh; debian_mirror"], capture_output=True,
                            text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as work:
        rootfs = Path(work) / "rootfs"
        print(f"debootstrap bookworm minbase + ca-certificates, tzdata from {mirror} (about 40 s)")
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


def conventional_image(client: docker.DockerClient, fixture: str, product: str) -> int:
    built = built_fixture(fixture, "static_stdlib")["products"][product]
    with tempfile.TemporaryDirectory() as context:
        shutil.copy2(built["path"], Path(context) / product)
        copies = [f"COPY {product} /app/{product}"]
        if built["backtracer"]:
            shutil.copy2(built["backtracer"], Path(context) / "swift-backtrace-static")
            copies.append("COPY swift-backtrace-static /app/swift-backtrace-static")
        for bundle in built["resources"]:
            shutil.copytree(bundle, Path(context) / Path(bundle).name, symlinks=True)
            copies.append(f"COPY {Path(bundle).name} /app/{Path(bundle).name}")
        (Path(context) / "Dockerfile").write_text(
            f"FROM {CONVENTIONAL_BASE}\n" + "\n".join(copies) + "\nUSER 65534\nENTRYPOINT [\"/app/" + product + "\"]\n")
        image, _logs = client.images.build(path=context, tag=f"{PREFIX}conventional-{fixture}", pull=False, rm=True)
    return image.attrs["Size"]


def loaded_size(client: docker.DockerClient, archive: Path, reference: str) -> int:
    client.images.load(archive.read_bytes())
    return client.images.get(reference).attrs["Size"]


def render_containerfile(context: Path, plan: dict) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(REPO / "images")), trim_blocks=True,
                             lstrip_blocks=False, keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    template = env.get_template(f"{plan['plan']['recipe']}.Containerfile.j2")
    (context / "Containerfile").write_text(template.render(image_plan=plan))


def timed(action, *args, **kwargs) -> float:
    start = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    client = docker.from_env()
    conventional_base(client)
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    rows, timings = [], []
    base = oci_image({"recipe": "runtime-base", "name": PREFIX + "swift-runtime", "dest": str(work / "runtime")})
    oci_image({"recipe": "runtime-base", "name": PREFIX + "swift-runtime", "format": "archive",
               "dest": str(work / "runtime.tar")})
    base_size = loaded_size(client, work / "runtime.tar", base["reference"])
    try:
        for fixture, product in FIXTURES.items():
            conventional = conventional_image(client, fixture, product)
            for mode in ("static_executable", "static_stdlib", "dynamic"):
                if (fixture, mode) in IMPOSSIBLE:
                    continue
                built = built_fixture(fixture, mode)["products"][product]
                variants = [("auto", {})]
                if mode == "dynamic":
                    variants = [("runtime-base", {"base": str(work / "runtime")})]
                    bag = work / f"bag-{fixture}"
                    result = run_module("shared_objects", {"executables": [built["path"]], "dest": str(bag),
                                                           "scope": "all", "resources": built["resources"]})
                    if not result.get("failed"):
                        variants.append(("scratch-bag", {"bag": str(bag)}))
                for label, extra in variants:
                    archive = work / f"{fixture}-{mode}-{label}.tar"
                    args = {"executable": built["path"], "resources": [] if "bag" in extra else built["resources"],
                            "name": PREFIX + fixture, "tag": f"{mode}-{label}".replace("_", "-"),
                            "format": "archive", "dest": str(archive), **extra}
                    result = oci_image(args)
                    size = loaded_size(client, archive, result["reference"])
                    app = sum(layer["size"] for layer in result["layers"] if layer["role"] == "app")
                    if label == "runtime-base":  # Docker's size includes the shared base; say what is new
                        shown = f"{mib(size)} = shared base + {mib(size - base_size)}"
                    else:
                        shown = mib(size)
                    rows.append(f"| {fixture} | {mode} | {result['recipe']} | {shown} | "
                                f"{mib(result['size'])} | {mib(app)} | {mib(conventional)} |")
                    if fixture in ("http-service", "foundation-service") and label != "runtime-base":
                        timings.append(time_builders(client, work, args, f"{fixture} {mode} {result['recipe']}"))
    finally:
        for image in client.images.list():
            if any(tag.startswith(PREFIX) and "debian-minbase" not in tag for tag in image.tags):
                for tag in image.tags:
                    client.images.remove(tag, force=True)
        shutil.rmtree(work, ignore_errors=True)
    write_report(rows, timings, base_size, base)


def time_builders(client, work: Path, args: dict, label: str) -> str:
    """Median seconds: daemonless build to an archive vs `docker build --no-cache` of the same files."""
    context = work / "context"
    plan = oci_image({**args, "format": "context", "dest": str(context)})
    render_containerfile(context, plan)
    daemonless, engine = [], []
    for run in range(RUNS):
        target = work / f"timing-{run}.tar"
        daemonless.append(timed(oci_image, {**args, "dest": str(target)}))
        engine.append(timed(client.images.build, path=str(context), dockerfile="Containerfile",
                            tag=PREFIX + "timing", pull=False, nocache=True, rm=True))
        target.unlink()
    return f"| {label} | {statistics.median(daemonless):.1f} s | {statistics.median(engine):.1f} s |"


def write_report(rows, timings, base_size, base) -> None:
    doc = REPO / "docs" / "images-benchmark.md"
    doc.write_text(f"""# Image sizes and build times

Measured by `bench/images.py` in one run: Swift {base['swift_version']}, x86_64, release builds, stripped.
*Image* is the unpacked size Docker reports after loading the daemonless image; *compressed* is what a registry
stores (gzip layers and config); *app layer* is what a code-only release ships. The *conventional* image is
Debian bookworm minbase with ca-certificates and tzdata plus the `static_stdlib` binary (and its backtracer and
resources), the shape of the Vapor and Hummingbird Dockerfile templates, built in the same run.
The shared Swift runtime base image is {mib(base_size)} unpacked ({mib(base['size'])} compressed) and is stored
once per host or registry, whatever the number of services on it.

| fixture | link mode | recipe | image | compressed | app layer | conventional |
|---|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

## Build time, daemonless vs Docker

Median of {RUNS} runs. *Daemonless* is one `swiftlinux.deploy.oci_image` run through `ansible` (start-up
included) writing the image archive; *docker build* is the classic builder (`docker build --no-cache`) on a build
context holding the same files, rendered from the same recipe.

| image | daemonless | docker build |
|---|---|---|
""" + "\n".join(timings) + "\n")
    print(doc.read_text())


if __name__ == "__main__":
    main()
