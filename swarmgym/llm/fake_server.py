"""A local chat-completions server that plays a scripted policy, with injected faults.

For tests and dry runs of ``swarmgym llm-eval`` without a model: it answers
``POST /v1/chat/completions`` by reading the last user message (the rendered state), letting a
hand-coded orchestrator choose the turn through :class:`~swarmgym.llm.text_policy.TextOrchestrator`
(spawns and one timed action in one message), and replying in the OpenAI format with token usage
(``len(text) // 4`` of the prompt and of the completion). It binds 127.0.0.1 only.

Faults are injected per episode (the ``X-Swarmgym-Episode`` request header) and per request
number within that episode (0, 1, ...; a retried turn is a new request number):

=================  ================================================================
``http_500``       HTTP 500 with an error body
``http_429``       HTTP 429 with ``Retry-After: 0``
``http_401``       HTTP 401 (a wrong key: the run stops)
``slow``           the reply comes after ``slow_seconds`` (longer than the client's timeout)
``drop``           the connection is closed without a reply
``bad_body``       HTTP 200 whose body is not JSON
``garbage_json``   a tool call whose arguments are not JSON
``wrong_tool``     a tool call to an unknown tool (``create_subagent``)
``no_tool_call``   a text reply without tool calls
=================  ================================================================

It stops by itself after ``max_requests`` requests (the later ones get HTTP 503) or
``lifetime`` seconds, whichever comes first. Run it by hand::

    python -m swarmgym.llm.fake_server --port 8011 --policy critical_path
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping

from swarmgym.llm.chat import EPISODE_HEADER
from swarmgym.llm.text_policy import StateParseError, TextOrchestrator

FAULTS = ("http_500", "http_429", "http_401", "slow", "drop", "bad_body", "garbage_json", "wrong_tool", "no_tool_call")


class FakeChatServer:
    """A scripted chat-completions server on 127.0.0.1 (use as a context manager).

    :param policy: orchestrator spec the server plays (``"critical_path"``, ``"sequential_crew"``, ...);
        requests are served concurrently, so a policy with state of its own (``random``) sees them interleaved.
    :param faults: ``{(episode, request_number): fault}`` or a callable ``(episode, request_number) -> fault or None``.
    :param max_requests: requests served before it answers 503 and stops, >= 1.
    :param lifetime: seconds before it stops by itself, > 0.
    :param slow_seconds: delay of a ``slow`` reply.
    :param delay: seconds added to every reply (a slow model).
    :param port: 0 picks a free port.
    """

    def __init__(
        self,
        policy: str = "critical_path",
        faults: Mapping[tuple[str, int], str] | Callable[[str, int], str | None] | None = None,
        *,
        max_requests: int = 10_000,
        lifetime: float = 600.0,
        slow_seconds: float = 3.0,
        delay: float = 0.0,
        port: int = 0,
    ) -> None:
        if isinstance(max_requests, bool) or not isinstance(max_requests, int) or max_requests < 1:
            raise ValueError(f"max_requests must be an integer >= 1, got {max_requests!r}")
        if not lifetime > 0:
            raise ValueError(f"lifetime must be > 0 seconds, got {lifetime!r}")
        if isinstance(faults, Mapping):
            bad = sorted({f for f in faults.values() if f not in FAULTS})
            if bad:
                raise ValueError(f"unknown faults {bad}; choose from {FAULTS}")
        self.policy = policy
        self.faults = faults
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.slow_seconds = slow_seconds
        self.delay = delay
        #: one entry per request: n, episode, request (number within the episode), fault, status
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._per_episode: dict[str, int] = {}
        self._stopped = threading.Event()
        self._agent = TextOrchestrator(policy, whole_turn=True)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    @property
    def url(self) -> str:
        """The base URL to pass as ``--base-url``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "FakeChatServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
        threading.Thread(target=self._httpd.shutdown, daemon=True).start()
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> "FakeChatServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def episodes(self) -> set[str]:
        """Episodes that sent at least one request."""
        with self._lock:
            return {e["episode"] for e in self.log}

    # ------------------------------------------------------------------ replies
    def _fault(self, episode: str, k: int) -> str | None:
        if self.faults is None:
            return None
        if callable(self.faults):
            return self.faults(episode, k)
        return self.faults.get((episode, k))

    def reply(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        """The completion for a request body (the scripted turn, or the faulty reply)."""
        messages = body.get("messages") or []
        user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        if fault == "garbage_json":
            calls = [{"id": "call_0", "type": "function", "function": {"name": "spawn_subagent", "arguments": '{"node": three'}}]
        elif fault == "wrong_tool":
            calls = [{"id": "call_0", "type": "function", "function": {"name": "create_subagent", "arguments": '{"node": 0}'}}]
        elif fault == "no_tool_call":
            calls = []
        else:
            try:
                calls = self._agent.act(user)["tool_calls"]
            except StateParseError:
                calls = [{"id": "call_0", "type": "function", "function": {"name": "answer", "arguments": "{}"}}]
        message: dict[str, Any] = {"role": "assistant", "content": "I will think about it." if not calls else None}
        if calls:
            message["tool_calls"] = calls
        prompt = sum(len(str(m.get("content") or "")) for m in messages) // 4
        completion = len(json.dumps(calls)) // 4 + 1
        with self._lock:
            n = len(self.log)
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                episode = self.headers.get(EPISODE_HEADER, "")
                with server._lock:
                    n = len(server.log)
                    k = server._per_episode.get(episode, 0)
                    server._per_episode[episode] = k + 1
                    entry = {"n": n, "episode": episode, "request": k, "fault": None, "status": 200}
                    server.log.append(entry)
                if n >= server.max_requests:
                    entry["status"] = 503
                    self._send(503, {"error": {"message": "the fake server's request limit is reached", "type": "server_error"}})
                    threading.Thread(target=server.stop, daemon=True).start()
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    entry["status"] = 404
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                    return
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    entry["status"] = 400
                    self._send(400, {"error": {"message": "the body is not JSON", "type": "invalid_request_error"}})
                    return
                fault = server._fault(episode, k)
                entry["fault"] = fault
                if server.delay:
                    time.sleep(server.delay)
                if fault == "http_500":
                    entry["status"] = 500
                    self._send(500, {"error": {"message": "injected internal error", "type": "server_error"}})
                    return
                if fault == "http_429":
                    entry["status"] = 429
                    self._send(429, {"error": {"message": "injected rate limit", "type": "rate_limit"}}, {"Retry-After": "0"})
                    return
                if fault == "http_401":
                    entry["status"] = 401
                    self._send(401, {"error": {"message": "injected: invalid API key", "type": "invalid_request_error"}})
                    return
                if fault == "drop":
                    entry["status"] = None
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if fault == "bad_body":
                    data = b"<html>upstream proxy error</html>"
                    try:
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                self._send(200, server.reply(body, fault))

        return Handler


def cli_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m swarmgym.llm.fake_server", description="Serve a scripted orchestrator as a chat-completions endpoint on 127.0.0.1."
    )
    p.add_argument("--port", type=int, default=8011)
    p.add_argument("--policy", default="critical_path", help="orchestrator spec it plays (default critical_path)")
    p.add_argument("--max-requests", type=int, default=100_000)
    p.add_argument("--lifetime", type=float, default=3600.0, help="seconds before it stops by itself (default 3600)")
    args = p.parse_args(argv)
    server = FakeChatServer(args.policy, max_requests=args.max_requests, lifetime=args.lifetime, port=args.port).start()
    print(f"serving {args.policy} at {server.url} (stops after {args.max_requests} requests or {args.lifetime:.0f} s)", flush=True)
    try:
        server._stopped.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())


__all__ = ["FAULTS", "FakeChatServer"]
