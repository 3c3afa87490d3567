"""A local HTTP server speaking Supabase Realtime's REST broadcast contract (README.md,
"Production").

``POST /realtime/v1/api/broadcast`` with ``apikey: <key>`` and ``Authorization: Bearer <key>``
and a JSON body ``{"messages": [{"topic": str, "event": str, "payload": object, "private": bool}]}``
is answered 202 with an empty body, and its messages are recorded in ``messages``, in order.
Anything else is refused as Supabase refuses it: 404 for another path, 405 for another method,
401 for a missing or wrong key, 400 for a body that is not JSON and 422 (the Realtime server's
answer to an invalid changeset) for a body of the wrong shape, with a JSON error body. Stricter
than Supabase in two places, so a publisher's slip is caught: ``private`` must be present
(Supabase defaults it to false) and unknown fields are refused (Supabase ignores them).

Faults are scripted: ``fail_next(times, status)`` answers the next requests with that status
(503, 429, ...) before looking at them, as a gateway or a rate limiter in front of Realtime would;
``after=`` lets that many requests through first. Every request is kept in ``requests``.

    with SupabaseRealtimeServer(service_role_key="...") as server:
        publisher = SupabaseBroadcastPublisher(server.url, "...")
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BROADCAST_PATH = "/realtime/v1/api/broadcast"
DEFAULT_KEY = "test-service-role-key"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int  # what the server answered

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Fault:
    after: int  # requests to let through first
    times: int
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class SupabaseRealtimeServer:
    def __init__(self, service_role_key: str = DEFAULT_KEY) -> None:
        self.service_role_key = service_role_key
        self.requests: list[RecordedRequest] = []
        self.messages: list[dict[str, Any]] = []  # accepted messages, in order
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> SupabaseRealtimeServer:
        handler = type("Handler", (_Handler,), {"state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="supabase-realtime", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SupabaseRealtimeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """What SUPABASE_URL would be (the project URL, without the Realtime path)."""
        assert self._httpd is not None, "the server is not running"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripting ---------------------------------------------------------------------------
    def fail_next(self, times: int = 1, status: int = 503, after: int = 0, retry_after: int | None = None) -> None:
        """Answer `times` requests with `status`, after letting `after` requests through."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        message = "You have exceeded your rate limit" if status == 429 else "Service Unavailable"
        with self._lock:
            self._faults.append(_Fault(after, times, status, {"message": message}, headers))

    @property
    def batches(self) -> list[list[dict[str, Any]]]:
        """The messages of each accepted request, in order."""
        with self._lock:
            return [r.json()["messages"] for r in self.requests if r.status == 202]

    # -- the contract ------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        fault = self._take_fault()
        if fault is not None:
            return fault.status, fault.body, fault.headers
        if path.split("?", 1)[0] != BROADCAST_PATH:
            return 404, {"message": "Not found"}, {}
        if method != "POST":
            return 405, {"message": "Method Not Allowed"}, {"Allow": "POST"}
        if headers.get("apikey") != self.service_role_key:
            return 401, {"message": "Invalid API key"}, {}
        if headers.get("authorization") != f"Bearer {self.service_role_key}":
            return 401, {"message": "Unauthorized"}, {}
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return 415, {"message": "Content-Type must be application/json"}, {}
        try:
            document = json.loads(body)
        except ValueError as error:
            return 400, {"message": f"malformed JSON: {error}"}, {}
        errors = _shape_errors(document)
        if errors:
            return 422, {"errors": errors}, {}
        with self._lock:
            self.messages.extend(document["messages"])
        return 202, None, {}

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.after > 0:
                    fault.after -= 1
                    return None
                if fault.times > 0:
                    fault.times -= 1
                    return fault
            self._faults = [f for f in self._faults if f.times > 0]
            return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _shape_errors(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("messages"), list):
        return {"messages": ["can't be blank"]}
    if not document["messages"]:
        return {"messages": ["can't be blank"]}
    per_message: list[dict[str, list[str]]] = []
    for message in document["messages"]:
        if not isinstance(message, dict):
            per_message.append({"message": ["is invalid"]})
            continue
        problems: dict[str, list[str]] = {}
        for name in ("topic", "event"):
            if not isinstance(message.get(name), str) or not message[name]:
                problems[name] = ["can't be blank" if name not in message else "is invalid"]
        if not isinstance(message.get("payload"), dict):
            problems["payload"] = ["can't be blank" if "payload" not in message else "is invalid"]
        if not isinstance(message.get("private"), bool):
            problems["private"] = ["can't be blank" if "private" not in message else "is invalid"]
        unknown = set(message) - {"id", "topic", "event", "payload", "private"}
        if unknown:
            problems["unknown"] = sorted(unknown)
        if problems:
            per_message.append(problems)
    return {"messages": per_message} if per_message else {}


class _Handler(BaseHTTPRequestHandler):
    state: SupabaseRealtimeServer
    protocol_version = "HTTP/1.1"  # keep-alive, as Supabase's gateway speaks it

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, answer, extra = self.state.handle(self.command, self.path, headers, body)
        self.state._record(RecordedRequest(self.command, self.path, headers, body, status))
        data = json.dumps(answer).encode() if answer is not None else b""
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests assert on `requests`
        pass
