"""`make bench` works: one quick run of every section writes the report, its JSON and its charts.

Nothing here asserts a time; a benchmark's numbers are read by people, not by tests.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from support import REPO, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def test_make_bench_quick_writes_the_report_json_and_charts(tmp_path):
    proc = subprocess.run(["make", "--no-print-directory", "bench", f"BENCH_ARGS=--quick --out {tmp_path}"],
                          capture_output=True, text=True, cwd=REPO, env=tool_env(), check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "benchmarks.json").read_text())
    assert results["quick"] is True
    assert {"sizes", "startup", "toolkit", "reproducibility", "delivery", "fleet"} <= set(results)
    report = (tmp_path / "benchmarks.md").read_text()
    for heading in ("## 1. Sizes", "## 2. Start-up", "## 3. Toolkit overhead", "## 4. Reproducibility",
                    "## 5. Delivery", "## 6. Fleet"):
        assert heading in report
    charts = sorted(path.name for path in (tmp_path / "benchmarks").glob("*.png"))
    assert charts == ["delivery.png", "sizes.png", "startup-container.png", "startup-exec.png", "toolkit-loaded.png",
                      "toolkit-pushed.png"]
    assert all((tmp_path / "benchmarks" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in charts)
    # Same inputs, same digests: the reproducibility section's finding, whatever the timings.
    assert all(value["identical"] for value in results["reproducibility"]["images"].values())
    # ship.yml's re-run changes nothing on the hosts, and a code-only release pulls less than the whole bag.
    delivery = results["delivery"]
    assert delivery["again"]["changed_hosts"] == 0 and delivery["first"]["changed_hosts"] > 0
    assert 0 < max(delivery["releases"]["pulled"]["received"].values()) < delivery["bag"]
    # The fleet section on one host: a first deploy that changed it, and a re-run that changed nothing in one call.
    (fleet,) = results["fleet"]["runs"]
    assert fleet["first"]["changed"] > 0 and fleet["again"]["changed"] == 0
    assert fleet["again"]["round_trips_per_host"] == 1
    assert "| service-docker | 1 |" in (tmp_path / "fleet-benchmark.md").read_text()
    assert (tmp_path / "fleet-benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
