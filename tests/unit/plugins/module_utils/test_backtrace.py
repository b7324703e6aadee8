"""Unit tests for module_utils/_backtrace.py: the Swift backtracer's report read back from logs, prefixes and all."""
from __future__ import annotations

import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils._backtrace import (
    MAX_LOG_BYTES,
    BacktraceError,
    images_without_build_id,
    parse,
    tail,
)

# Trimmed from a real crash of http-service (static_stdlib) under the toolchain's swift-backtrace-static.
REPORT = """listening on 127.0.0.1:18997

*** Signal 4: Backtracing from 0x560b49d40a90... done ***

*** Program crashed: Illegal instruction at 0x0000560b49d40a90 ***

Platform: x86_64 Linux (Debian GNU/Linux 12 (bookworm))

Thread 0 "http-service" crashed:

  0      0x0000560b49d40a90 <unknown> in http-service
  1 [ra] 0x0000560b49d407a1 <unknown> in http-service
  2 [ra] 0x00007f04d554bef2 _print_unlocked<A, B>(_:_:) + 865 in libswiftCore.so
...


Registers:

rax 0x800000000000171e  9223372036854781726

Images (5 omitted):

0x0000560b49cdb000\u20130x0000560b4a19e280 94205334b9108e78f733d12dcacbec8af0a288b1 http-service /opt/a/http-service
0x00007f04d5200000\u20130x00007f04d57d2d40 b521f25fdeacf504eca83d97c7308e8fc11be729 libswiftCore.so /opt/a/lib/libswiftCore.so
0x0000000000400000\u20130x0000000000d47408 <no build ID> static-one /app/static-one

Backtrace took 0.00s
"""


def check(crash):
    assert crash["reason"] == "Illegal instruction at 0x0000560b49d40a90"
    assert crash["thread"] == {"index": 0, "name": "http-service"}
    assert [f["index"] for f in crash["frames"]] == [0, 1, 2]
    assert crash["frames"][1]["tags"] == ["ra"] and crash["frames"][1]["address"] == 0x560b49d407a1
    assert crash["frames"][2]["image"] == "libswiftCore.so"
    assert crash["frames"][2]["symbol"] == "_print_unlocked<A, B>(_:_:) + 865"
    images = crash["images"]
    assert images["http-service"]["start"] == 0x560b49cdb000
    assert images["libswiftCore.so"]["build_id"] == "b521f25fdeacf504eca83d97c7308e8fc11be729"
    assert images["static-one"]["build_id"] is None and images["static-one"]["path"] == "/app/static-one"


def test_plain_report():
    check(parse(REPORT))


def test_journal_prefixes_with_changing_times_and_pids():
    lines = [f"Dec 01 15:0{i % 10}:{i % 60:02d} host http-service[{100 + i}]: {line}"
             for i, line in enumerate(REPORT.splitlines())]
    check(parse("\n".join(lines)))


def test_docker_timestamps():
    lines = [f"2026-12-01T15:00:{i % 60:02d}.{i:09d}Z {line}" for i, line in enumerate(REPORT.splitlines())]
    check(parse("\n".join(lines)))


def test_the_last_of_two_crashes_is_read():
    second = REPORT.replace("0x0000560b49d40a90 ***", "0x0000560b49d40a91 ***")
    assert parse(REPORT + "\nrestarted\n" + second)["reason"].endswith("a91")


def test_no_report_is_one_sentence():
    with pytest.raises(BacktraceError, match="no Swift backtrace"):
        parse("listening on 127.0.0.1:8080\nstopping\n")


def test_a_report_cut_before_its_frames():
    with pytest.raises(BacktraceError, match="no frames of the crashed thread"):
        parse(REPORT.split("Thread 0", maxsplit=1)[0])


def test_only_the_tail_of_a_huge_log_is_read():
    huge = "x" * (MAX_LOG_BYTES * 2) + "\n" + REPORT
    assert len(tail(huge)) == MAX_LOG_BYTES
    check(parse(huge))


def test_images_without_build_id_are_only_those_frames_use():
    crash = parse(REPORT)
    assert images_without_build_id(crash) == []
    crash["frames"][0]["image"] = "static-one"
    assert images_without_build_id(crash) == ["/app/static-one"]


def test_a_hostile_build_id_is_kept_as_printed_for_the_store_to_refuse():
    crash = parse(REPORT.replace("b521f25fdeacf504eca83d97c7308e8fc11be729", "../../etc/passwd"))
    assert crash["images"]["libswiftCore.so"]["build_id"] == "../../etc/passwd"
