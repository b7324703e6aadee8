"""Build every fixture in every link mode once, before pytest and molecule run side by side.

Both stages read the same cached builds (.build/test-cache/artifacts/<fixture>/<mode>); building them first
means neither stage writes there while the other reads, and each later swift_build run reports changed=false.
"""
from __future__ import annotations

import sys
import time

from support import IMPOSSIBLE, LAMBDA_PINNED, LINK_MODES, PRODUCTS, built_fixture, lambda_function_build


def main() -> int:
    for fixture in PRODUCTS:
        for mode in LINK_MODES:
            if (fixture, mode) in IMPOSSIBLE:
                continue
            start = time.monotonic()
            result = built_fixture(fixture, mode)
            print(f"{fixture:20} {mode:18} {'built' if result.get('changed') else 'cached':6} "
                  f"{time.monotonic() - start:6.1f} s", flush=True)
    start = time.monotonic()
    lambda_function_build(LAMBDA_PINNED)
    print(f"{'lambda-function':20} {LAMBDA_PINNED:18} {time.monotonic() - start:13.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
