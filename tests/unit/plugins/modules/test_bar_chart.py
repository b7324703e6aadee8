"""swiftlinux.deploy.bar_chart: a PNG from data, the same bytes for the same data, one sentence for bad data."""
from __future__ import annotations

import json

import pytest
from support import run_module

DATA = {"title": "Bytes per artifact", "categories": ["static_executable", "bag-all"],
        "series": {"program": [7034112, 53640], "shipped": [17307520, 20163932]}, "ylabel": "MiB", "scale": 1048576}


def test_the_chart_is_a_png_written_once(tmp_path):
    dest = tmp_path / "sizes.png"
    first = run_module("bar_chart", {"dest": str(dest), **DATA})
    assert first["changed"] is True and not first.get("failed"), first
    assert dest.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and first["size"] == dest.stat().st_size
    again = run_module("bar_chart", {"dest": str(dest), **DATA})
    assert again["changed"] is False
    other = run_module("bar_chart", {"dest": str(dest), **DATA, "title": "Another title"}, check_mode=True)
    assert other["changed"] is True and dest.read_bytes() != b""
    assert run_module("bar_chart", {"dest": str(dest), **DATA})["changed"] is False  # check mode wrote nothing


@pytest.mark.parametrize(("changes", "needle"), [
    ({"scale": 0}, "scale must be more than 0"),
    ({"series": {"program": [1]}}, "series program must be a list of 2 numbers"),
    ({"series": {"program": ["big", 2]}}, "series program must be a list of 2 numbers"),
    ({"dest": "/nonexistent/dir/sizes.png"}, "the directory of dest /nonexistent/dir/sizes.png does not exist"),
], ids=["scale", "length", "not-numbers", "no-directory"])
def test_bad_data_gives_one_clear_error(tmp_path, changes, needle):
    result = run_module("bar_chart", {"dest": str(tmp_path / "c.png"), **DATA, **changes})
    assert result.get("failed") is True and needle in result["msg"], result
    assert "Traceback" not in json.dumps(result)
