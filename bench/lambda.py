"""Cold start and warm invocation of the lambda-function fixture per link mode, against the local Runtime API, and
write docs/lambda-benchmark.md.

Cold start: from just before exec to the first GET /invocation/next reaching the Runtime API (the moment Lambda
counts the init phase as done). Warm invocation: one invoke round trip through the Runtime API (event queued, `next`
answered, response posted and accepted), the median of WARM invocations after a warm-up. Every mode runs once per
round, in an order that rotates from round to round, so slow phases of a busy machine hit each mode alike.

static_executable and static_stdlib (with the fixture's hypotf pin, the static_stdlib build that fits glibc 2.34)
run from their unzipped lambda_package zips; dynamic cannot be packaged for Lambda and runs in place from its build,
finding the Swift runtime in the toolchain through its run path, for reference.
Run: .venv/bin/python bench/lambda.py [rounds]
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from lambda_runtime import RuntimeAPI, function_env, unzip_like_lambda  # noqa: E402
from support import LAMBDA_PINNED, REPO, built_fixture, lambda_function_build, run_module  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
WARM_UP = 20
WARM = 200
MODES = ("static_executable", LAMBDA_PINNED, "dynamic")
LABELS = {"static_executable": "static_executable", LAMBDA_PINNED: "static_stdlib (hypotf pinned)",
          "dynamic": "dynamic (reference, not packageable)"}


def prepare(mode: str, work: Path) -> tuple[Path, dict | None]:
    """(the bootstrap to run, the lambda_package result or None)."""
    build = lambda_function_build(mode)
    if mode == "dynamic":
        return build / "lambda-function", None
    result = run_module("lambda_package", {"build": str(build), "function_name": "bench", "dest": str(work / mode)})
    if result.get("failed"):
        raise SystemExit(f"lambda_package of {mode} failed: {result['msg']}")
    task_root = work / f"{mode}-task"
    task_root.mkdir()
    unzip_like_lambda(Path(result["zip"]), task_root)
    return task_root / "bootstrap", result


def one_run(program: Path) -> tuple[float, float]:
    """(cold start seconds, median warm invocation seconds) of one fresh process."""
    with RuntimeAPI(function_name="bench") as api:
        env = function_env(api, program.parent)
        start = time.monotonic()
        process = subprocess.Popen([str(program)], cwd=program.parent, env=env, stderr=subprocess.DEVNULL)
        try:
            while not api.next_polls:
                if process.poll() is not None:
                    raise SystemExit(f"{program} exited with {process.returncode} before asking for an event")
                time.sleep(0.0002)
            cold = api.next_polls[0] - start
            for index in range(WARM_UP):
                api.invoke({"warm-up": index})
            times = []
            for index in range(WARM):
                began = time.monotonic()
                invocation = api.invoke({"i": index})
                times.append(time.monotonic() - began)
                assert invocation.outcome == "response"
        finally:
            process.kill()
            process.wait()
    return cold, statistics.median(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def spread(values: list[float]) -> str:
    return f"{ms(statistics.median(values))} ({ms(min(values))}–{ms(max(values))})"


def summary(cold: dict, warm: dict) -> str:
    """What the figures say, computed from them."""
    base = "static_executable"
    medians = {mode: statistics.median(values) for mode, values in warm.items()}
    spread_pct = (max(medians.values()) / min(medians.values()) - 1) * 100
    others = ", ".join(f"{LABELS[m]} {statistics.median(cold[m]) / statistics.median(cold[base]):.2f}x"
                       for m in MODES if m != base)
    overlap = max(min(values) for values in warm.values()) <= min(max(values) for values in warm.values())
    fastest = min(MODES, key=lambda m: min(cold[m]))
    return (f"Cold start against static_executable: {others}; the fastest single start was {LABELS[fastest]}'s. "
            f"At start a static executable maps one file and relocates itself, static_stdlib has the dynamic loader "
            f"bind glibc, libm and libstdc++, and dynamic also loads the Swift runtime's shared libraries. Warm "
            f"invocation medians differ by {spread_pct:.0f}% between the fastest and the slowest mode"
            + ("; their min–max ranges overlap, so on this machine the difference is noise: once running, the "
               "round trip is the socket and the Python Runtime API, not the link mode." if overlap else "."))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lambda-bench-") as scratch:
        prepared = {mode: prepare(mode, Path(scratch)) for mode in MODES}
        cold = {mode: [] for mode in MODES}
        warm = {mode: [] for mode in MODES}
        for round_index in range(ROUNDS):
            order = MODES[round_index % len(MODES):] + MODES[:round_index % len(MODES)]
            for mode in order:
                c, w = one_run(prepared[mode][0])
                cold[mode].append(c)
                warm[mode].append(w)
            print(f"round {round_index + 1}/{ROUNDS}", flush=True)
    base = "static_executable"
    rows = []
    for mode in MODES:
        result = prepared[mode][1]
        size = (f"{result['sizes']['stripped'] / 2**20:.1f} MiB / {result['sizes']['zipped'] / 2**20:.1f} MiB"
                if result else f"{prepared[mode][0].stat().st_size / 2**20:.1f} MiB + Swift runtime / —")
        rows.append(f"| {LABELS[mode]} | {spread(cold[mode])} "
                    f"| {statistics.median(cold[mode]) / statistics.median(cold[base]):.2f}x "
                    f"| {spread(warm[mode])} "
                    f"| {statistics.median(warm[mode]) / statistics.median(warm[base]):.2f}x | {size} |")
    version = built_fixture("lambda-function", "static_executable")["swift_version"]
    load = os.getloadavg()[0]
    doc = REPO / "docs" / "lambda-benchmark.md"
    doc.write_text(f"""# Lambda cold start and warm invocation per link mode

Measured by `.venv/bin/python bench/lambda.py {ROUNDS}` with Swift {version} on {platform.machine()}, {os.cpu_count()}
cores (load average {load:.1f} when it finished: the machine was running other work, so read the ratios more than
the absolute figures). The program is the lambda-function fixture (raw-socket Runtime API client, no Foundation)
talking to the test suite's local Runtime API (tests/lambda_runtime.py, Python) over 127.0.0.1.

- *Cold start*: exec of `bootstrap` to its first `GET /invocation/next` reaching the Runtime API.
- *Warm invocation*: one round trip through the Runtime API (event queued, `next` answered, response posted and
  accepted); per process the median of {WARM} invocations after {WARM_UP} warm-up ones.
- Each figure is the median over {ROUNDS} fresh processes per mode, with the minimum and maximum in brackets; the
  modes ran interleaved, in an order rotating from round to round. Ratios are against static_executable.
- static_executable and static_stdlib ran from their unzipped `lambda_package` zips; dynamic ran in place from its
  build (it cannot be packaged for Lambda) and loads the Swift runtime from the toolchain.

| mode | cold start | ratio | warm invocation | ratio | bootstrap / zip |
|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n\n" + summary(cold, warm) + "\n")
    print(doc.read_text())


if __name__ == "__main__":
    main()
