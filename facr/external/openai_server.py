"""``facr llm serve``: a minimal OpenAI-compatible chat endpoint for a local model.

For machines without llama.cpp or vLLM: it serves any backbone facr can load (a registry name
such as ``smollm2-135m``, or a folder) at ``http://HOST:PORT/v1`` with ``GET /v1/models`` and
``POST /v1/chat/completions`` (``messages``, ``max_tokens``, ``temperature`` 0 = greedy; other
fields are ignored, ``stream`` is refused). Requests are answered one at a time. It binds
127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server_version = "facr-llm/1"

    def log_message(self, fmt, *args):  # quiet: one line per request only when asked
        if self.server.verbose:
            super().log_message(fmt, *args)

    def _send(self, code: int, obj: dict) -> None:
        data = json.dumps(obj).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, message: str) -> None:
        self._send(code, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model",
                                                         "owned_by": "facr"}]})
        else:
            self._error(404, f"no route {self.path} (GET /v1/models, POST /v1/chat/completions)")

    def do_POST(self):
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route {self.path} (POST /v1/chat/completions)")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            self._error(400, "the request body is not JSON")
            return
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") in ("system", "user", "assistant")
                for m in messages):
            self._error(400, "messages must be a non-empty list of {role: system|user|assistant, content: str}")
            return
        if body.get("stream"):
            self._error(400, "stream is not supported")
            return
        if float(body.get("temperature") or 0) != 0:
            self._error(400, "only greedy decoding is served (temperature 0)")
            return
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or self.server.chat.max_new_tokens
        if not isinstance(max_tokens, int) or not 1 <= max_tokens <= 4096:
            self._error(400, "max_tokens must be an integer in 1..4096")
            return
        with self.server.lock:
            self.server.chat.max_new_tokens = max_tokens
            text = self.server.chat([messages])[0]
        self._send(200, {
            "id": f"chatcmpl-facr-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": self.server.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        })


def make_server(chat, model_name: str, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> ThreadingHTTPServer:
    """An HTTP server answering with ``chat`` (a :class:`facr.external.llm.LocalChat`); port 0 picks a free one."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.chat, server.model_name, server.lock, server.verbose = chat, model_name, threading.Lock(), verbose
    return server
