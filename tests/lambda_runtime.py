"""A local AWS Lambda Runtime API on 127.0.0.1, for running a packaged `bootstrap` the way Lambda does.

It answers as https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html describes:

- GET  /2018-06-01/runtime/invocation/next long-polls until an event is queued, then answers 200 with the event as
  the body and the headers Lambda-Runtime-Aws-Request-Id, -Deadline-Ms (epoch ms), -Invoked-Function-Arn, -Trace-Id;
- POST /2018-06-01/runtime/invocation/{id}/response answers 202, 400 for an unknown or already answered id, and 413
  for a body over 6 MiB (the invocation then fails with Function.ResponseSizeTooLarge, as Lambda reports it);
- POST /2018-06-01/runtime/invocation/{id}/error and /2018-06-01/runtime/init/error take
  {"errorMessage", "errorType"} with the header Lambda-Runtime-Function-Error-Type and answer 202.

Standard library only (http.server, threading); every request is recorded for the tests to assert on.
"""
from __future__ import annotations

import dataclasses
import http.server
import json
import os
import queue
import secrets
import stat
import threading
import time
import zipfile
from pathlib import Path

API = "/2018-06-01/runtime"
MAX_RESPONSE = 6 * 1024 * 1024  # Lambda's synchronous response payload quota
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:{name}"


@dataclasses.dataclass
class Invocation:
    request_id: str
    event: bytes
    deadline_ms: int
    trace_id: str
    queued_at: float
    delivered_at: float | None = None
    answered_at: float | None = None
    outcome: str = "pending"  # pending | response | error
    body: bytes = b""
    error_type: str | None = None  # from the Lambda-Runtime-Function-Error-Type header, or Lambda's own
    error: dict | None = None  # the posted {"errorMessage", "errorType"}
    done: threading.Event = dataclasses.field(default_factory=threading.Event)

    def json(self):
        return json.loads(self.body)


@dataclasses.dataclass
class Exchange:
    method: str
    path: str
    status: int
    at: float


class RuntimeAPI:
    """The Runtime API for one function; `address` is host:port, as AWS_LAMBDA_RUNTIME_API wants it."""

    def __init__(self, function_name: str = "fixture", timeout_ms: int = 3000, max_response: int = MAX_RESPONSE):
        self.function_arn = FUNCTION_ARN.format(name=function_name)
        self.timeout_ms = timeout_ms
        self.max_response = max_response
        self.invocations: dict[str, Invocation] = {}
        self.init_errors: list[dict] = []
        self.exchanges: list[Exchange] = []
        self.next_polls: list[float] = []  # time.monotonic() of every GET next, on arrival
        self._events: queue.Queue[Invocation] = queue.Queue()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    # ---- the invoking side --------------------------------------------------------------------------------------

    def submit(self, event) -> Invocation:
        """Queue one event (bytes, str or a JSON-able object) for the next `next`; returns its invocation."""
        if not isinstance(event, bytes):
            event = (event if isinstance(event, str) else json.dumps(event)).encode()
        request_id = "-".join(secrets.token_hex(n) for n in (4, 2, 2, 2, 6))  # a UUID's shape, as Lambda's
        trace_id = "Root=1-%08x-%s;Parent=%s;Sampled=0" % (int(time.time()), secrets.token_hex(12), secrets.token_hex(8))
        invocation = Invocation(request_id=request_id, event=event, trace_id=trace_id, queued_at=time.monotonic(),
                                deadline_ms=int(time.time() * 1000) + self.timeout_ms)
        with self._lock:
            self.invocations[invocation.request_id] = invocation
        self._events.put(invocation)
        return invocation

    def invoke(self, event, timeout: float = 10.0) -> Invocation:
        """Queue an event and wait until the function answered it (response or error)."""
        invocation = self.submit(event)
        if not invocation.done.wait(timeout):
            raise AssertionError(f"the function did not answer invocation {invocation.request_id} within "
                                 f"{timeout} s; exchanges so far: {self.exchanges[-5:]}")
        return invocation

    def statuses(self, method: str, suffix: str) -> list[int]:
        return [e.status for e in self.exchanges if e.method == method and e.path.endswith(suffix)]

    # ---- the function's side (called by the handler) -------------------------------------------------------------

    def _next(self) -> Invocation | None:
        self.next_polls.append(time.monotonic())
        while not self._stopping.is_set():
            try:
                invocation = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            invocation.delivered_at = time.monotonic()
            return invocation
        return None

    def _answer(self, request_id: str):
        """The invocation still waiting for an answer under this id, or None (unknown or answered)."""
        with self._lock:
            invocation = self.invocations.get(request_id)
            if invocation is None or invocation.outcome != "pending" or invocation.delivered_at is None:
                return None
            return invocation

    def _finish(self, invocation: Invocation, outcome: str, body: bytes = b"", error_type=None, error=None):
        invocation.outcome, invocation.body = outcome, body
        invocation.error_type, invocation.error = error_type, error
        invocation.answered_at = time.monotonic()
        invocation.done.set()


def _error_body(message: str, error_type: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def _handler(api: RuntimeAPI):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real Runtime API
        # Headers and body go out in two writes; with Nagle's algorithm the body waits for the client's delayed
        # ACK (40 ms on Linux), which would be most of every invocation's time.
        disable_nagle_algorithm = True

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
            api.exchanges.append(Exchange(self.command, self.path, status, time.monotonic()))
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the function was stopped meanwhile
                self.close_connection = True

        def _body(self, limit: int) -> bytes | None:
            """The request body, or None after draining one longer than `limit` (the connection stays usable)."""
            length = int(self.headers.get("Content-Length") or 0)
            if length <= limit:
                return self.rfile.read(length)
            while length:
                chunk = self.rfile.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)
            return None

        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path != API + "/invocation/next":
                self._send(404, _error_body("no such path " + self.path, "NotFound"))
                return
            invocation = api._next()
            if invocation is None:  # stopping
                self.close_connection = True
                return
            self._send(200, invocation.event, {
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                "Lambda-Runtime-Trace-Id": invocation.trace_id,
            })

        def do_POST(self):  # noqa: N802 - http.server's name
            if "Content-Length" not in self.headers:
                self.close_connection = True
                self._send(411, _error_body("Content-Length is required", "LengthRequired"))
                return
            if self.path == API + "/init/error":
                body = self._body(MAX_RESPONSE) or b""
                api.init_errors.append({"header": self.headers.get("Lambda-Runtime-Function-Error-Type"),
                                        "body": _json_or_text(body)})
                self._send(202, b'{"status":"OK"}')
                return
            parts = self.path[len(API + "/invocation/"):].split("/") if self.path.startswith(API + "/invocation/") \
                else []
            if len(parts) != 2 or parts[1] not in ("response", "error"):
                self._body(MAX_RESPONSE)
                self._send(404, _error_body("no such path " + self.path, "NotFound"))
                return
            request_id, kind = parts
            invocation = api._answer(request_id)
            body = self._body(api.max_response if kind == "response" else MAX_RESPONSE)
            if invocation is None:
                self._send(400, _error_body("Invalid request ID", "InvalidRequestID"))
                return
            if body is None:
                api._finish(invocation, "error", error_type="Function.ResponseSizeTooLarge",
                            error={"errorMessage": "Response payload size exceeded maximum allowed payload size "
                                                   "(%d bytes)." % api.max_response,
                                   "errorType": "Function.ResponseSizeTooLarge"})
                self._send(413, _error_body("Exceeded maximum allowed payload size (%d bytes)." % api.max_response,
                                            "RequestEntityTooLarge"))
                return
            if kind == "response":
                api._finish(invocation, "response", body)
            else:
                api._finish(invocation, "error", body, self.headers.get("Lambda-Runtime-Function-Error-Type"),
                            _json_or_text(body))
            self._send(202, b'{"status":"OK"}')

    return Handler


def _json_or_text(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def unzip_like_lambda(archive: Path, dest: Path) -> None:
    """Extract a deployment package keeping what Lambda keeps: modes and symbolic links (zipfile keeps neither)."""
    with zipfile.ZipFile(archive) as package:
        for info in package.infolist():
            target = dest / info.filename
            mode = info.external_attr >> 16
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                os.chmod(target, stat.S_IMODE(mode) or 0o755)
            elif stat.S_ISLNK(mode):
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(package.read(info).decode(), target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(package.read(info))
                os.chmod(target, stat.S_IMODE(mode) or 0o644)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"process {pid} has no VmRSS (it has exited)")


def function_env(api: RuntimeAPI, task_root: Path, **extra: str) -> dict[str, str]:
    """The environment Lambda gives a custom runtime's bootstrap (the parts a function may read)."""
    return {
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": api.function_arn.rsplit(":", 1)[-1],
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "us-east-1",
        "_HANDLER": "bootstrap",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        **extra,
    }
