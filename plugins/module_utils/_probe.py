# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Probe descriptions: check one, run one with its retries, say in one line what came back.

A probe description is plain data shared by the service and container roles:
kind http | tcp | command | none, with host/port/path/status/body, command, seconds, and
retries/delay/timeout. Nothing here knows any program's flags or endpoints.
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import time

KINDS = ("http", "tcp", "command", "none")
# Defaults of every field; the module's argument spec and the doc fragment say the same.
DEFAULTS = dict(host="127.0.0.1", port=None, path="/", status=200, body=None, command=None,
                seconds=5.0, retries=20, delay=1.0, timeout=5.0)
TAIL = 500  # characters of output kept in `last`
BODY_LIMIT = 65536  # bytes of an HTTP body read for the body match


class ProbeError(ValueError):
    """A probe description that cannot be run; the message is one sentence naming the fix."""


def tail(text, limit=TAIL):
    text = (text or "").strip()
    return text if len(text) <= limit else "..." + text[-limit:]


# The probe option's argument spec: the probe module's, and the probe_problem filter's on the controller.
PROBE_SPEC = dict(
    kind=dict(type="str", required=True, choices=["http", "tcp", "command", "none"]),
    host=dict(type="str", default="127.0.0.1"),
    port=dict(type="int"),
    path=dict(type="str", default="/"),
    status=dict(type="int", default=200),
    body=dict(type="str"),
    command=dict(type="list", elements="str"),
    seconds=dict(type="float", default=5),
    retries=dict(type="int", default=20),
    delay=dict(type="float", default=1),
    timeout=dict(type="float", default=5),
)


def _number(probe, name, minimum, integer=False):
    value = probe.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ProbeError("probe %s must be a%s number, not %r" % (name, "n integer" if integer else "", value))
    if value < minimum:
        raise ProbeError("probe %s must be %s or more, not %r" % (name, minimum, value))


def validate(description):
    """Return the description with defaults filled in, or raise ProbeError with one sentence."""
    if not isinstance(description, dict):
        raise ProbeError("a probe description must be a mapping with a kind (http, tcp, command or none), not %r"
                         % (description,))
    probe = dict(DEFAULTS)
    probe.update({k: v for k, v in description.items() if v is not None})
    unknown = sorted(set(probe) - set(DEFAULTS) - {"kind"})
    if unknown:
        raise ProbeError("probe has unknown field(s) %s; use kind, %s" % (", ".join(unknown), ", ".join(DEFAULTS)))
    kind = probe.get("kind")
    if kind not in KINDS:
        raise ProbeError("probe kind %r is unknown; use one of %s" % (kind, ", ".join(KINDS)))
    _number(probe, "retries", 0, integer=True)
    _number(probe, "delay", 0)
    _number(probe, "timeout", 0.001)
    if kind in ("http", "tcp"):
        port = probe["port"]
        if port is None:
            raise ProbeError("a %s probe needs a port: add port: <1-65535> to the probe" % kind)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ProbeError("probe port %r is out of range; use a number from 1 to 65535" % (port,))
        if not isinstance(probe["host"], str) or not probe["host"]:
            raise ProbeError("probe host must be an address such as 127.0.0.1, not %r" % (probe["host"],))
    if kind == "http":
        if not isinstance(probe["path"], str) or not probe["path"].startswith("/"):
            raise ProbeError("probe path %r must start with '/', for example /health" % (probe["path"],))
        if isinstance(probe["status"], bool) or not isinstance(probe["status"], int) or not 100 <= probe["status"] <= 599:
            raise ProbeError("probe status %r is not an HTTP status; use a number from 100 to 599" % (probe["status"],))
        if probe["body"] is not None:
            try:
                re.compile(probe["body"])
            except (re.error, TypeError) as exc:
                raise ProbeError("probe body %r is not a valid regular expression (%s)" % (probe["body"], exc))
    if kind == "command":
        argv = probe["command"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
            raise ProbeError("a command probe needs command: a non-empty list of strings, the program first "
                             "(it runs without a shell), not %r" % (argv,))
    if kind == "none":
        _number(probe, "seconds", 0)
    return probe


def describe(probe):
    """What is probed, in a few words: 'GET http://127.0.0.1:8080/health expecting 200'."""
    kind = probe["kind"]
    if kind == "http":
        host = "[%s]" % probe["host"] if ":" in probe["host"] else probe["host"]
        body = " and a body matching %r" % probe["body"] if probe["body"] else ""
        return "GET http://%s:%d%s expecting %d%s" % (host, probe["port"], probe["path"], probe["status"], body)
    if kind == "tcp":
        return "TCP connect to %s port %d" % (probe["host"], probe["port"])
    if kind == "command":
        return "command %s" % " ".join(probe["command"])
    return "staying up for %g s" % probe["seconds"]


def advice(probe):
    """What to check when the probe fails."""
    kind = probe["kind"]
    if kind == "http":
        return ("check that the program listens on %s port %d (its arguments) and answers %s with %d, "
                "and its log" % (probe["host"], probe["port"], probe["path"], probe["status"]))
    if kind == "tcp":
        return "check that the program listens on %s port %d (its arguments), and its log" % (probe["host"], probe["port"])
    if kind == "command":
        return "check the command's output above and the program's log"
    return "check the program's log: it must keep running"


def _http(probe):
    conn = http.client.HTTPConnection(probe["host"], probe["port"], timeout=probe["timeout"])
    try:
        conn.request("GET", probe["path"], headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read(BODY_LIMIT).decode("utf-8", "replace")
    finally:
        conn.close()
    last = "HTTP %d: %s" % (response.status, tail(body, 200))
    if response.status != probe["status"]:
        return False, last
    if probe["body"] and not re.search(probe["body"], body):
        return False, last + " (body does not match %r)" % probe["body"]
    return True, last


def _tcp(probe):
    with socket.create_connection((probe["host"], probe["port"]), timeout=probe["timeout"]):
        return True, "connected"


def _command(probe):
    try:
        proc = subprocess.run(probe["command"], capture_output=True, text=True, errors="replace",
                              timeout=probe["timeout"], check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, "no answer within %g s (timeout)" % probe["timeout"]
    output = "rc=%d" % proc.returncode
    for name, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        if text.strip():
            output += " %s: %s" % (name, tail(text, 240))
    return proc.returncode == 0, output


def attempt(probe):
    """One try: (ok, what came back). A connection error is a failed try, not an exception."""
    try:
        if probe["kind"] == "http":
            return _http(probe)
        if probe["kind"] == "tcp":
            return _tcp(probe)
        return _command(probe)
    except socket.timeout:
        return False, "no answer within %g s (timeout)" % probe["timeout"]
    except OSError as exc:
        return False, "%s: %s%s" % (type(exc).__name__, exc.strerror or exc, " (%s)" % exc.filename if exc.filename else "")
    except http.client.HTTPException as exc:
        return False, "%s: %s" % (type(exc).__name__, exc)


def run(probe, sleep=time.sleep, clock=time.monotonic):
    """Try the probe until it passes or 1 + retries tries failed; return ok, attempts, elapsed, last, summary."""
    start = clock()
    what = describe(probe)
    if probe["kind"] == "none":
        sleep(probe["seconds"])
        elapsed = round(clock() - start, 1)
        return dict(ok=True, attempts=1, elapsed=elapsed, last="waited %g s" % probe["seconds"],
                    summary="%s: waited; whether the process stayed up is for the caller to check" % what)
    attempts, ok, last = 0, False, ""
    while True:
        attempts += 1
        ok, last = attempt(probe)
        if ok or attempts > probe["retries"] or (probe["kind"] == "command" and last.startswith("FileNotFoundError")):
            break
        sleep(probe["delay"])
    elapsed = round(clock() - start, 1)
    last = tail(last)
    if ok:
        summary = "%s: passed on attempt %d after %.1f s (%s)" % (what, attempts, elapsed, tail(last, 100))
    else:
        summary = "%s: failed %d attempt(s) over %.1f s; last: %s" % (what, attempts, elapsed, tail(last, 200))
    return dict(ok=ok, attempts=attempts, elapsed=elapsed, last=last, summary=summary)


def failure_message(probe, result):
    """One message for a failed probe: what was probed, what came back, what to check."""
    return "Probe %s failed after %d attempt(s) over %.1f s; last answer: %s. To fix it, %s." % (
        describe(probe), result["attempts"], result["elapsed"], result["last"], advice(probe))


def parse_unit_state(text):
    """`systemctl show --property=...` output as a dict; the properties the gate reads are always present."""
    state = dict(ActiveState="", SubState="", NRestarts="0", ExecMainStartTimestampMonotonic="0")
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name in state:
            state[name] = value.strip()
    return state


def unit_failure_message(state, result):
    """Why a unit failed its gate although (or before) the probe passed."""
    return "the unit is %s (%s) and was restarted %d time(s) during the probe (%s)" % (
        state["ActiveState"] or "unknown", state["SubState"] or "unknown", state["restarts"], result["summary"])


def problem(description):
    """The error the probe module would give for this description (types as its argument spec coerces them), or ''."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    checked = ArgumentSpecValidator(dict(probe=dict(type="dict", required=True, options=PROBE_SPEC))).validate(
        dict(probe=description))
    if checked.error_messages:
        return checked.errors.msg
    try:
        validate(checked.validated_parameters["probe"])
    except ProbeError as exc:
        return str(exc)
    return ""
