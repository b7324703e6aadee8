"""Build every fixture in every link mode once, before pytest and molecule run side by side.

Both stages read the same cached builds (.build/test-cache/artifacts/<fixture>/<mode>); building them first
means neither stage writes there while the other reads, and each later swift_build run reports changed=false.

A small package's build keeps about one core busy (planning, linking), so fixtures build two at a time (more on
bigger machines). A fixture's own modes build one after the other: they share its dependency checkout.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from support import IMPOSSIBLE, LAMBDA_PINNED, LINK_MODES, PRODUCTS, built_fixture, lambda_function_build

_print_lock = threading.Lock()


def report(fixture: str, mode: str, outcome: str, seconds: float) -> None:
    with _print_lock:
        print(f"{fixture:20} {mode:26} {outcome:6} {seconds:6.1f} s", flush=True)


def build_all_modes(fixture: str) -> None:
    for mode in LINK_MODES:
        if (fixture, mode) in IMPOSSIBLE:
            continue
        start = time.monotonic()
        result = built_fixture(fixture, mode)
        report(fixture, mode, "built" if result.get("changed") else "cached", time.monotonic() - start)
    if fixture == "lambda-function":  # its pinned variant has a scratch folder of its own
        start = time.monotonic()
        lambda_function_build(LAMBDA_PINNED)
        report(fixture, LAMBDA_PINNED, "ready", time.monotonic() - start)


def main() -> int:
    workers = max(2, (os.cpu_count() or 2) // 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(build_all_modes, fixture) for fixture in PRODUCTS]:
            future.result()  # the first failure ends the stage with its message
    return 0


if __name__ == "__main__":
    sys.exit(main())
