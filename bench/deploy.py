"""Time the container role's two deliveries side by side: an archive shipped and loaded, or a registry pull.

Writes docs/deploy-benchmark.md. In one run, interleaved, RUNS times each:
- "first": the host (this machine's engine) lacks the image, the container does not exist;
- "again": the same play right after, which must report changed=0 (only reads and the http probe gate).
The image is http-service built static_executable (scratch-static) by swiftlinux.deploy.oci_image; the registry is
Debian's docker-registry on a free 127.0.0.1 port. Wall-clock times include ansible-playbook start-up.
Run: .venv/bin/python bench/deploy.py   (needs the Docker engine and docker-registry; nothing is pulled from outside)
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from conftest import _start_registry, _stop  # noqa: E402
from support import REPO, remove_tags, run_module, run_playbook, swift_build_fixture  # noqa: E402

RUNS = 3
PORT = 18391
NAME = "swiftlinux-bench/deploy-http"
PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "container.yml"


def timed_deploy(variables: dict) -> tuple[float, int]:
    start = time.monotonic()
    result = run_playbook(PLAYBOOK, "localhost", variables)
    elapsed = time.monotonic() - start
    if result.rc != 0:
        raise SystemExit(f"deploy failed: {result.failures or result.output[-2000:]}")
    return elapsed, result.changed


def main() -> None:
    client = docker.from_env()
    executable = swift_build_fixture("http-service", "static_executable") / "http-service"
    with tempfile.TemporaryDirectory(prefix="swiftlinux-bench-deploy-") as work:
        registry, host = _start_registry(Path(work) / "registry", None)
        try:
            archive = Path(work) / "image.tar"
            built = run_module("oci_image", {"executable": str(executable), "name": f"{host}/{NAME}", "tag": "1",
                                             "ports": [PORT], "push": True, "format": "archive", "dest": str(archive)})
            assert built.get("pushed"), built
            common = dict(container_name="bench-deploy", container_image=f"{host}/{NAME}:1", container_port=PORT,
                          container_command=["--bind", "127.0.0.1", "--port", str(PORT)],
                          container_probe={"kind": "http", "port": PORT, "path": "/health"},
                          container_labels={"swiftlinux.test": "bench"})
            variants = {"archive": {**common, "container_image_archive": str(archive)},
                        "pull": {**common, "container_image_archive": ""}}
            times = {(variant, phase): [] for variant in variants for phase in ("first", "again")}
            for run in range(RUNS):
                for variant, variables in variants.items():
                    for container in client.containers.list(all=True, filters={"name": "^bench-deploy$"}):
                        container.remove(force=True)
                    remove_tags(client, f"{host}/{NAME}", "swiftlinux-previous/bench-deploy")
                    elapsed, changed = timed_deploy(variables)
                    assert changed > 0, f"{variant}: first run {run + 1} changed nothing"
                    times[(variant, "first")].append(elapsed)
                    elapsed, changed = timed_deploy(variables)
                    assert changed == 0, f"{variant}: second run changed {changed}"
                    times[(variant, "again")].append(elapsed)
        finally:
            for container in client.containers.list(all=True, filters={"name": "^bench-deploy$"}):
                container.remove(force=True)
            remove_tags(client, f"{host}/{NAME}", "swiftlinux-previous/bench-deploy")
            _stop(registry)
    write_report(times, archive_size=built["size"], files=len(built["files"]))


def write_report(times: dict, archive_size: int, files: int) -> None:
    median = {key: statistics.median(values) for key, values in times.items()}
    rows = "\n".join(f"| {variant} | {phase} | {median[(variant, phase)]:.1f} s | "
                     + ", ".join(f"{value:.1f}" for value in times[(variant, phase)]) + " |"
                     for variant, phase in times)
    report = f"""# Container role: archive delivery vs registry pull

`make bench-deploy` (bench/deploy.py) on this machine (2 cores), {RUNS} interleaved runs each. The image is
http-service built `static_executable` (scratch-static, {files} files, {archive_size / 2**20:.1f} MiB compressed as
a registry stores it); the target is this machine's Docker engine through `connection: local`; every time
includes ansible-playbook start-up and the gate (an http probe of /health from the host).

| delivery | run | median | all runs (s) |
|---|---|---|---|
{rows}

- A first deploy with an archive takes {median[('archive', 'first')] / median[('pull', 'first')]:.2f}x the time
  of a registry pull (copy + `docker load` vs. a pull over loopback).
- An unchanged re-run (changed=0) takes {median[('archive', 'again')]:.1f} s with an archive (the image ID is
  compared and nothing is shipped) and {median[('pull', 'again')]:.1f} s with `container_pull: always`, which
  asks the registry every time; `container_pull: missing` skips that request.
"""
    (REPO / "docs" / "deploy-benchmark.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
