# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Swift runtime backtracer's text output, read back: the crash, the crashed thread's frames and the images.

A log is untrusted input: only its last MAX_LOG_BYTES are read, lines are capped, and every address and build-id is
checked before anything uses it. Journal and `docker logs -t` prefixes before each line are recognised and removed.
Pure Python, so the module that reads a host's journal can use it on the host. Private to this collection.
"""

from __future__ import annotations

import re

MAX_LOG_BYTES = 4 << 20
MAX_LINE = 4096
MAX_FRAMES = 512
MAX_IMAGES = 1024
BUILD_ID = re.compile(r"^(?:[0-9a-f]{2}){8,64}$")

# What starts a crash report: the banner, then the crashed thread.
_BANNER = re.compile(r"\*\*\* (?:Program crashed|Swift runtime failure|Signal \d+): ?(?P<reason>.*?)(?: \*\*\*)?\s*$")
_CRASHED_THREAD = re.compile(r"^Thread (?P<index>\d+)(?: \"(?P<name>[^\"]*)\")? crashed:\s*$")
_FRAME = re.compile(r"^\s*(?P<index>\d+)\s+(?P<tags>(?:\[[a-z]+\]\s*)*)(?P<address>0x[0-9a-fA-F]{1,16})\s+"
                    r"(?P<symbol>.*?)\s+in\s+(?P<image>\S+)(?:\s+at\s+(?P<location>.*))?\s*$")
_IMAGES = re.compile(r"^Images(?: \(.*\))?:\s*$")
_IMAGE = re.compile(r"^\s*(?P<start>0x[0-9a-fA-F]{1,16})\s*[\u2013-]\s*(?P<end>0x[0-9a-fA-F]{1,16})\s+"
                    r"(?P<build_id><no build ID>|\S+)\s+(?P<name>\S+)\s+(?P<path>.+?)\s*$")
# Digits vary from line to line of one prefix (times, pids); everything else stays as the crash line has it.
_DIGITS = re.compile(r"\d+")


class BacktraceError(Exception):
    """A log that holds no usable backtrace; the message says what to pass instead."""


def tail(text, limit=MAX_LOG_BYTES):
    """The last `limit` bytes' worth of text (a crash report is at the end of a log)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-limit:] if len(text) > limit else text


def _prefix_pattern(line, start):
    """A pattern for the log prefix before `start` on the banner line: digits generalised, the rest literal."""
    prefix = line[:start]
    if not prefix:
        return None
    parts = _DIGITS.split(prefix)
    return re.compile("".join(re.escape(part) + (r"\d+" if i < len(parts) - 1 else "") for i, part in enumerate(parts)))


def _strip(lines, pattern):
    if pattern is None:
        return lines
    out = []
    for line in lines:
        found = pattern.match(line)
        out.append(line[found.end():] if found else line)
    return out


def parse(text):
    """The last crash in text: {reason, thread, frames: [...], images: {name: {...}}}; BacktraceError when none.

    A frame is {index, address (int), tags, symbol, image, location}; an image {start, end, build_id or None,
    name, path}.
    """
    lines = [line[:MAX_LINE] for line in tail(text).splitlines()]
    banner_at = None
    for number, line in enumerate(lines):
        found = _BANNER.search(line)
        if found and not line[found.end():].strip() and "Backtracing from" not in line:
            banner_at = (number, found.start(), found.group("reason"))
    if banner_at is None:
        raise BacktraceError("the log holds no Swift backtrace (no '*** Program crashed' line): pass the journal or "
                             "container log of the crash, from a program run with the backtracer enabled "
                             "(SWIFT_BACKTRACE=enable=yes,...)")
    number, column, reason = banner_at
    body = _strip(lines[number:], _prefix_pattern(lines[number], column))

    thread = None
    frames = []
    images = {}
    section = None
    for line in body[1:]:
        if _BANNER.search(line) and "Backtracing from" not in line:
            break  # a later crash of the same log would have been chosen; stop at anything that looks like one
        crashed = _CRASHED_THREAD.match(line)
        if crashed and thread is None:
            thread = {"index": int(crashed.group("index")), "name": crashed.group("name")}
            section = "frames"
            continue
        if _IMAGES.match(line):
            section = "images"
            continue
        if section == "frames":
            if not line.strip():
                if frames:
                    section = None
                continue
            frame = _FRAME.match(line)
            if frame and len(frames) < MAX_FRAMES:
                frames.append(_frame(frame))
        elif section == "images":
            image = _IMAGE.match(line)
            if image and len(images) < MAX_IMAGES:
                images.setdefault(image.group("name"), _image(image))
            elif not line.strip() and images:
                section = None
    if not frames:
        raise BacktraceError("the log has a crash (%s) but no frames of the crashed thread: the backtracer's output "
                             "was cut off or disabled; pass the whole log from the crash" % (reason or "no reason"))
    return {"reason": reason, "thread": thread, "frames": frames, "images": images}


def _frame(found):
    tags = re.findall(r"\[([a-z]+)\]", found.group("tags"))
    return {"index": int(found.group("index")), "address": int(found.group("address"), 16), "tags": tags,
            "symbol": found.group("symbol"), "image": found.group("image"), "location": found.group("location")}


def _image(found):
    build_id = found.group("build_id")
    # Kept as printed, even when it is not hex: the store refuses it by name, rather than it silently vanishing.
    return {"start": int(found.group("start"), 16), "end": int(found.group("end"), 16),
            "build_id": None if build_id == "<no build ID>" else build_id[:200],
            "name": found.group("name"), "path": found.group("path")}


def images_without_build_id(crash):
    """Paths of the images that frames point into and whose build-id the backtracer did not print."""
    used = {frame["image"] for frame in crash["frames"]}
    return sorted({image["path"] for name, image in crash["images"].items() if name in used and not image["build_id"]})
