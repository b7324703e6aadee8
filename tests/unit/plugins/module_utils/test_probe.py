"""The probe description and the probe module against real listeners on 127.0.0.1.

Servers are real: http.server on a free port, a bare TCP listener, a port nobody listens on, and
/bin/true and /bin/false for command probes. Delays are short so the file runs in seconds.
"""
from __future__ import annotations

import http.server
import socket
import threading

import pytest

from support import run_module

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _probe
from ansible_collections.swiftlinux.deploy.plugins.module_utils._probe import ProbeError, failure_message, run, validate

FAST = dict(retries=2, delay=0.05, timeout=2)


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        status, body = {"/health": (200, b'{"status":"ok"}'), "/busy": (503, b"warming up")}.get(self.path, (404, b"no"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tcp_port():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture()
def closed_port():
    """A port that was free a moment ago and has no listener now."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def probe(**fields):
    return run(validate({**FAST, **fields}))


# ---- kinds that pass and fail on real listeners ----------------------------------------------

def test_http_health_answers(http_port):
    result = probe(kind="http", port=http_port, path="/health", body='"ok"')
    assert result["ok"] and result["attempts"] == 1
    assert result["last"] == 'HTTP 200: {"status":"ok"}'
    assert result["summary"].startswith(f"GET http://127.0.0.1:{http_port}/health expecting 200")


def test_http_wrong_status_fails_after_every_retry(http_port):
    result = probe(kind="http", port=http_port, path="/busy")
    assert not result["ok"] and result["attempts"] == 3
    assert result["last"] == "HTTP 503: warming up"


def test_http_expected_non_200_status_passes(http_port):
    assert probe(kind="http", port=http_port, path="/missing", status=404)["ok"]


def test_http_body_mismatch_fails(http_port):
    result = probe(kind="http", port=http_port, path="/health", body="^healthy$")
    assert not result["ok"]
    assert "body does not match '^healthy$'" in result["last"]


def test_http_closed_port_names_the_connection_error(closed_port):
    result = probe(kind="http", port=closed_port, retries=1)
    assert not result["ok"] and result["attempts"] == 2
    assert result["last"] == "ConnectionRefusedError: Connection refused"


def test_tcp_connects_to_a_listener(tcp_port):
    result = probe(kind="tcp", port=tcp_port)
    assert result["ok"] and result["last"] == "connected"


def test_tcp_closed_port_fails(closed_port):
    result = probe(kind="tcp", port=closed_port, retries=0)
    assert not result["ok"] and result["attempts"] == 1 and "refused" in result["last"]


def test_command_true_passes_and_false_fails():
    assert probe(kind="command", command=["/bin/true"])["ok"]
    result = probe(kind="command", command=["/bin/false"])
    assert not result["ok"] and result["attempts"] == 3 and result["last"] == "rc=1"


def test_command_output_tail_is_kept_and_truncated():
    result = probe(kind="command", command=["/bin/sh", "-c", "yes x | head -c 5000; echo boom >&2; exit 3"], retries=0)
    assert not result["ok"] and result["last"].startswith("rc=3 stdout: ...")
    assert result["last"].endswith("stderr: boom") and len(result["last"]) <= 520


def test_command_runs_without_a_shell():
    result = probe(kind="command", command=["/bin/echo", "$HOME", ";", "false"])
    assert result["ok"] and result["last"] == "rc=0 stdout: $HOME ; false"


def test_missing_program_stops_at_once():
    result = probe(kind="command", command=["/nonexistent/prog"], retries=5)
    assert not result["ok"] and result["attempts"] == 1
    assert result["last"] == "FileNotFoundError: No such file or directory (/nonexistent/prog)"


def test_command_timeout_is_a_failed_try():
    result = probe(kind="command", command=["/bin/sleep", "5"], timeout=0.2, retries=0)
    assert not result["ok"] and result["last"] == "no answer within 0.2 s (timeout)"


def test_none_waits_the_given_seconds():
    result = probe(kind="none", seconds=0.3)
    assert result["ok"] and result["attempts"] == 1 and result["elapsed"] >= 0.3


def test_failure_message_says_what_what_came_back_and_what_to_check(closed_port):
    checked = validate({**FAST, "kind": "http", "port": closed_port, "path": "/ready"})
    message = failure_message(checked, run(checked))
    assert f"GET http://127.0.0.1:{closed_port}/ready expecting 200 failed after 3 attempt(s)" in message
    assert "Connection refused" in message and f"listens on 127.0.0.1 port {closed_port}" in message


# ---- bad descriptions: one sentence each ----------------------------------------------------------

@pytest.mark.parametrize(("description", "needle"), [
    ({"kind": "udp", "port": 1}, "probe kind 'udp' is unknown; use one of http, tcp, command, none"),
    ({}, "probe kind None is unknown"),
    ("http", "must be a mapping"),
    ({"kind": "http"}, "a http probe needs a port"),
    ({"kind": "tcp", "port": 0}, "probe port 0 is out of range"),
    ({"kind": "tcp", "port": 70000}, "probe port 70000 is out of range"),
    ({"kind": "http", "port": 80, "path": "health"}, "must start with '/'"),
    ({"kind": "http", "port": 80, "status": 42}, "probe status 42 is not an HTTP status"),
    ({"kind": "http", "port": 80, "body": "("}, "probe body '(' is not a valid regular expression"),
    ({"kind": "command"}, "a command probe needs command: a non-empty list"),
    ({"kind": "command", "command": []}, "a command probe needs command"),
    ({"kind": "command", "command": "/bin/true"}, "a command probe needs command"),
    ({"kind": "none", "retries": -1}, "probe retries must be 0 or more"),
    ({"kind": "none", "seconds": -2}, "probe seconds must be 0 or more"),
    ({"kind": "none", "delay": "soon"}, "probe delay must be a number"),
    ({"kind": "none", "url": "http://x"}, "unknown field(s) url"),
])
def test_bad_descriptions(description, needle):
    with pytest.raises(ProbeError) as error:
        validate(description)
    assert needle in str(error.value)
    assert "\n" not in str(error.value)


def test_defaults_assume_no_program():
    expected = dict(kind="none", host="127.0.0.1", port=None, path="/", status=200, body=None, command=None,
                    seconds=5.0, retries=20, delay=1.0, timeout=5.0)
    assert validate({"kind": "none"}) == expected


# ---- the module through ansible --------------------------------------------------------------------

def test_module_passes_and_reports(http_port):
    result = run_module("probe", {"probe": {"kind": "http", "port": str(http_port), "path": "/health", **FAST}})
    assert not result.get("failed") and not result["changed"], result
    assert result["ok"] and result["attempts"] == 1 and result["last"] == 'HTTP 200: {"status":"ok"}'


def test_module_failure_is_one_message(http_port):
    result = run_module("probe", {"probe": {"kind": "http", "port": http_port, "path": "/busy", **FAST}})
    assert result["failed"] and not result["ok"] and result["attempts"] == 3
    assert result["msg"].startswith(f"Probe GET http://127.0.0.1:{http_port}/busy expecting 200 failed after 3")
    assert "HTTP 503: warming up" in result["msg"] and "check that the program listens" in result["msg"]


@pytest.mark.parametrize(("description", "needle"), [
    ({"kind": "http"}, "a http probe needs a port"),
    ({"kind": "tcp", "port": 99999}, "probe port 99999 is out of range"),
    ({"kind": "ftp"}, "value of kind must be one of: http, tcp, command, none, got: ftp"),
    ({"kind": "none", "retries": -3}, "probe retries must be 0 or more"),
])
def test_module_refuses_bad_descriptions(description, needle):
    result = run_module("probe", {"probe": description})
    assert result["failed"] and needle in result["msg"], result
    assert "Traceback" not in str(result)


def test_module_check_mode_does_not_probe(closed_port):
    result = run_module("probe", {"probe": {"kind": "tcp", "port": closed_port}}, check_mode=True)
    assert not result.get("failed") and result["ok"] and result["attempts"] == 0, result
    assert "not probed in check mode" in result["summary"]


def test_unit_state_is_read_from_systemctl_show():
    state = _probe.parse_unit_state("ActiveState=activating\nSubState=auto-restart\nNRestarts=3\nOther=x\n")
    assert state == {"ActiveState": "activating", "SubState": "auto-restart", "NRestarts": "3",
                     "ExecMainStartTimestampMonotonic": "0"}
    assert _probe.parse_unit_state("ExecMainStartTimestampMonotonic=123\n")["ExecMainStartTimestampMonotonic"] == "123"


def test_unit_failure_names_the_state_and_the_restarts():
    state = dict(ActiveState="active", SubState="running", NRestarts="4", restarts=2)
    message = _probe.unit_failure_message(state, {"summary": "GET /health: passed on attempt 1"})
    assert message == ("the unit is active (running) and was restarted 2 time(s) during the probe "
                       "(GET /health: passed on attempt 1)")


@pytest.mark.parametrize(("description", "needle"), [
    ({"kind": "udp", "port": 53}, "http, tcp, command, none"),
    ({"kind": "http"}, "a http probe needs a port"),
    ({"kind": "http", "port": "eighty"}, "port"),
    ({"kind": "tcp", "port": 70000}, "out of range"),
    ({"kind": "none", "retries": -1}, "retries must be 0 or more"),
    ({"kind": "http", "port": 80, "colour": "red"}, "colour"),
    ("http", "dict"),
])
def test_probe_problem_says_what_the_module_would_say(description, needle):
    """The probe_problem filter (roles check descriptions with it on the controller) and the module agree."""
    said = _probe.problem(description)
    assert needle in said
    module = run_module("probe", {"probe": description}, check_mode=True)
    assert module.get("failed") and needle in module["msg"], module


def test_probe_problem_accepts_what_the_module_accepts():
    for description in ({"kind": "http", "port": "8080", "path": "/health"}, {"kind": "none", "seconds": 1},
                        {"kind": "command", "command": ["true"]}):
        assert _probe.problem(description) == ""
        assert not run_module("probe", {"probe": description}, check_mode=True).get("failed")
