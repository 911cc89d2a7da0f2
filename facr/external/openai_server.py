"""``facr llm serve``: an OpenAI-compatible chat endpoint for a local model.

For machines without llama.cpp or vLLM: it serves any backbone facr can load (a registry name such as
``smollm2-135m``, or a folder) at ``http://HOST:PORT/v1``:

- ``GET /v1/models`` (and ``/v1/models/{id}``), ``POST /v1/chat/completions`` with ``messages`` (text),
  ``max_tokens``, ``temperature`` (default 0 = greedy, so an audit re-run gets the same answers),
  ``top_p``, ``seed``, ``stop``, ``stream`` (server-sent events) and ``stream_options.include_usage``;
  every reply carries ``usage``. Other OpenAI fields are accepted only at their neutral value
  (``n`` 1, no tools, no logprobs, no penalties); anything else is a 400.
- Every refusal is an OpenAI-style JSON error, ``{"error": {"message", "type", "param", "code"}}``:
  400 for a bad field (``param`` names it) or a prompt that does not fit the model's context, 401
  without the API key, 403 for a Host header that is not loopback, 404 / 405 for a wrong path or
  method, 408 for a client silent past the timeout, 411 without a Content-Length, 413 for a body over
  the limit (refused from its Content-Length, before reading it), 415 for a body not sent as
  application/json, 503 when every worker and queue slot is taken.
- Bounded: each connection has a socket timeout; ``workers`` threads handle connections (one request
  each, HTTP/1.0), ``queue`` more may wait, the model generates one reply at a time.
- Loopback only unless ``allow_remote`` (which needs an API key): the default serves no one else,
  and a browser page cannot drive it (JSON content type required, Host header checked).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import math
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from facr.errors import FacrError
from facr.external.llm import API_KEY_ENV

LINGER_S = 2.0  # how long a refused body is read and dropped, so the client sees the refusal, not a reset
_LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost")


class ServeConfigError(FacrError, ValueError):
    """A serving setting out of range, reported against its flag (``--port``)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"--{field.replace('_', '-')}", message)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to bind) reaches this machine only."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig:
    """Settings of :class:`OpenAIServer`; every field is validated in ``__post_init__``."""

    # metadata: the flags of `facr llm serve` (facr.flags)
    host: str = field(default="127.0.0.1", metadata={
        "help": "address to bind (a non-loopback one needs --allow-remote)"})
    port: int = field(default=8080, metadata={"help": "port, 0..65535 (0 picks a free one)"})
    # when set, every request needs ``Authorization: Bearer <key>``
    api_key: str | None = field(default=None, metadata={
        "help": f"require Authorization: Bearer KEY (default: ${API_KEY_ENV}, which stays out of ps)"})
    allow_remote: bool = field(default=False, metadata={  # a non-loopback host needs it (and an api_key)
        "help": "allow a --host other machines can reach (needs an API key; the traffic is plain HTTP)"})
    workers: int = field(default=4, metadata={"help": "connections handled at once"})
    queue: int = field(default=8, metadata={"help": "connections waiting for a worker; more get 503"})
    timeout: float = field(default=30.0, metadata={  # read or write, then the socket is closed
        "help": "seconds a connection may stay silent"})
    max_request_bytes: int = field(default=1 << 20, metadata={"help": "largest request body (default 1 MiB)"})
    max_new_tokens: int = field(default=96, metadata={"help": "tokens per answer when a request names no max_tokens"})
    verbose: bool = field(default=False, metadata={"help": "log every request"})

    def __post_init__(self):
        _check_int(self, "port", 0, 65535, "(0 picks a free one)")
        _check_int(self, "workers", 1, 256)
        _check_int(self, "queue", 0, 4096)
        _check_int(self, "max_request_bytes", 1024, 1 << 30)
        _check_int(self, "max_new_tokens", 1, 1 << 20)
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or \
                not math.isfinite(self.timeout) or not 0 < self.timeout <= 3600:
            raise ServeConfigError("timeout", f"must be a number of seconds in (0, 3600], got {self.timeout!r}")
        if self.api_key is not None and (not self.api_key or not all(33 <= ord(c) <= 126 for c in self.api_key)):
            raise ServeConfigError("api_key", "must be printable ASCII without spaces (it travels in an HTTP header)")
        if not self.remote:
            return
        if not self.allow_remote:
            raise ServeConfigError("host", f"{self.host or '(all interfaces)'} is reachable from other machines; "
                                           "pass --allow-remote with an API key to serve it (the default "
                                           "127.0.0.1 serves this machine only)")
        if self.api_key is None:
            raise ServeConfigError("allow_remote", f"needs an API key (--api-key or {API_KEY_ENV}): without one, "
                                                   "anyone who reaches the port uses the model")

    @property
    def remote(self) -> bool:
        return not is_loopback(self.host)


def _check_int(config, field: str, lo: int, hi: int, note: str = "") -> None:
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ServeConfigError(field, f"must be an integer in {lo}..{hi}{' ' + note if note else ''}, got {value!r}")


# ------------------------------------------------------------------ requests
class RequestError(Exception):
    """A refused request: the HTTP status and OpenAI's error fields."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class ChatRequest:
    """A validated ``/v1/chat/completions`` body."""

    messages: list[dict]  # {"role": system|user|assistant, "content": str}
    max_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value, param: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(400, f"{param} must be a number, got {_show(value)}", param)
    if (value <= lo if lo_open else value < lo) or value > hi:
        raise RequestError(400, f"{param} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {_show(value)}",
                           param)
    return float(value)


def _integer(value, param: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RequestError(400, f"{param} must be an integer in {lo}..{hi}, got {_show(value)}", param)
    return value


def _boolean(value, param: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(400, f"{param} must be true or false, got {_show(value)}", param)
    return value


def _only(*allowed, what: str) -> Callable[[Any, str], None]:
    """A field facr accepts only at its neutral value(s): anything else is a 400 saying what is not served."""
    def check(value, param: str) -> None:
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise RequestError(400, f"{param}: {what} (got {_show(value)})", param)
    return check


def _string(value, param: str) -> str:
    if not isinstance(value, str):
        raise RequestError(400, f"{param} must be a string, got {_show(value)}", param)
    return value


def _stop(value, param: str) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not 1 <= len(stops) <= 4 or not all(isinstance(s, str) and s for s in stops):
        raise RequestError(400, f"{param} must be a non-empty string or a list of 1..4 of them, got {_show(value)}",
                           param)
    return tuple(stops)


def _stream_options(value, param: str) -> bool:
    if not isinstance(value, dict) or set(value) - {"include_usage"}:
        raise RequestError(400, f"{param} must be an object with only include_usage, got {_show(value)}", param)
    return _boolean(value.get("include_usage", False), f"{param}.include_usage")


_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _content(value, param: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise RequestError(400, f"{param} must be a string or a non-empty list of text parts, got {_show(value)}",
                           param)
    texts = []
    for j, part in enumerate(value):
        p = f"{param}[{j}]"
        if not isinstance(part, dict) or part.get("type") != "text":
            raise RequestError(400, f"{p}: only text parts ({{\"type\": \"text\", \"text\": ...}}) are served, got "
                                    f"{_show(part)}", f"{p}.type")
        if set(part) - {"type", "text"} or not isinstance(part.get("text"), str):
            raise RequestError(400, f"{p} must be {{\"type\": \"text\", \"text\": <string>}}, got {_show(part)}", p)
        texts.append(part["text"])
    return "\n".join(texts)


def _messages(value, param: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise RequestError(400, f"{param} must be a non-empty list of messages, got {_show(value)}", param)
    out = []
    for i, m in enumerate(value):
        p = f"{param}[{i}]"
        if not isinstance(m, dict):
            raise RequestError(400, f"{p} must be an object with role and content, got {_show(m)}", p)
        role = m.get("role")
        if role not in _ROLES:
            raise RequestError(400, f"{p}.role must be one of {', '.join(_ROLES)} (no tools are served), got "
                                    f"{_show(role)}", f"{p}.role")
        if "name" in m and not isinstance(m["name"], str):
            raise RequestError(400, f"{p}.name must be a string, got {_show(m['name'])}", f"{p}.name")
        # Replayed client objects carry empty extras (refusal, tool_calls, audio: null): only those pass.
        for key in sorted(set(m) - {"role", "content", "name"}):
            if m[key] not in (None, []):
                raise RequestError(400, f"{p}.{key} is not served (text chat only), got {_show(m[key])}", f"{p}.{key}")
        out.append({"role": _ROLES[role], "content": _content(m.get("content"), f"{p}.content")})
    return out


# Every field a chat request may have: how it is checked, and the ChatRequest field it fills (None: none).
_FIELDS: dict[str, tuple[Callable[[Any, str], Any], str | None]] = {
    "model": (lambda v, p: None, None),  # checked against the served name in parse_chat_request
    "messages": (_messages, "messages"),
    "max_tokens": (lambda v, p: _integer(v, p, 1, 1 << 20), "max_tokens"),
    "max_completion_tokens": (lambda v, p: _integer(v, p, 1, 1 << 20), "max_tokens"),
    "temperature": (lambda v, p: _number(v, p, 0, 2), "temperature"),
    "top_p": (lambda v, p: _number(v, p, 0, 1, lo_open=True), "top_p"),
    "seed": (lambda v, p: _integer(v, p, -(1 << 63), (1 << 63) - 1), "seed"),
    "stop": (_stop, "stop"),
    "stream": (_boolean, "stream"),
    "stream_options": (_stream_options, "include_usage"),
    "user": (_string, None),
    "n": (_only(1, what="only n=1 is served"), None),
    "frequency_penalty": (_only(0, 0.0, what="penalties are not served, only 0"), None),
    "presence_penalty": (_only(0, 0.0, what="penalties are not served, only 0"), None),
    "logprobs": (_only(False, what="logprobs are not served"), None),
    "top_logprobs": (_only(0, what="logprobs are not served"), None),
    "logit_bias": (_only({}, what="logit_bias is not served"), None),
    "response_format": (_only({"type": "text"}, what="only {\"type\": \"text\"} is served"), None),
    "tools": (_only([], what="tools are not served"), None),
    "tool_choice": (_only("none", what="tools are not served"), None),
    "parallel_tool_calls": (_boolean, None),
    "store": (_only(False, what="stored completions are not served"), None),
}


def parse_chat_request(body: Any, model_name: str) -> ChatRequest:
    """Check every field of a ``/v1/chat/completions`` body (raises :class:`RequestError` naming the
    first bad one); ``null`` means the field's default, as in OpenAI's API."""
    if not isinstance(body, dict):
        raise RequestError(400, f"the body must be a JSON object, got {_show(body)}")
    for key in body:
        if key not in _FIELDS:
            raise RequestError(400, f"unrecognized request argument: {key}", key)
    if "messages" not in body:
        raise RequestError(400, "messages is required", "messages")
    model = body.get("model")
    if model is not None and model != model_name:
        if not isinstance(model, str):
            raise RequestError(400, f"model must be a string, got {_show(model)}", "model")
        raise RequestError(404, f"the model {model!r} is not served here; this server has {model_name!r}",
                           "model", "model_not_found")
    values: dict[str, Any] = {}
    for key, value in body.items():
        if value is None:
            continue
        check, field = _FIELDS[key]
        checked = check(value, key)
        if field is not None:
            if field in values and values[field] != checked:
                raise RequestError(400, "max_tokens and max_completion_tokens differ: send one", key)
            values[field] = checked
    if "include_usage" in values and not values.get("stream"):
        raise RequestError(400, "stream_options is only allowed when stream is true", "stream_options")
    return ChatRequest(**values)


class _Reply:
    """The reply as the client sees it, fed piece by piece: leading and trailing whitespace trimmed (as
    :class:`facr.external.llm.LocalChat` does) and cut before the first stop string. Text that may still
    turn out to be trailing whitespace or the start of a stop string is held back until it cannot."""

    def __init__(self, stop: tuple[str, ...]):
        self.stop, self.held, self.stopped, self.started = stop, "", False, False

    def feed(self, piece: str) -> str:
        self.held = self.held + piece if self.started else piece.lstrip()
        self.started = self.started or bool(self.held)
        return self._release(final=False)

    def flush(self) -> str:
        """What is held once the text has ended (a stop string still pending is complete or never will be)."""
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        held = self.held
        cuts = [i for i in (held.find(s) for s in self.stop) if i >= 0]
        # where a stop string may still be completing: a tail of the held text that is a proper prefix of one
        open_ = [] if final else [j for j in range(len(held)) if any(len(s) > len(held) - j and s.startswith(held[j:])
                                                                      for s in self.stop)]
        if cuts and not (open_ and min(open_) < min(cuts)):  # no longer stop string can start before this one
            self.stopped = True
            out, self.held = held[:min(cuts)].rstrip(), ""
            return out
        # hold back from the first such tail, and the whitespace before it
        keep = len(held[:min(open_, default=len(held))].rstrip())
        out, self.held = held[:keep], held[keep:]
        return out


# ------------------------------------------------------------------ HTTP
class _Handler(BaseHTTPRequestHandler):
    server_version = "facr-llm/2"
    # HTTP/1.0: one request per connection, so an idle keep-alive client never holds a worker.
    protocol_version = "HTTP/1.0"

    def setup(self):
        self.timeout = self.server.config.timeout  # StreamRequestHandler applies it to the socket
        self.body_unread = False
        super().setup()

    def handle(self):
        super().handle()
        if self.body_unread:
            self._linger()

    def log_message(self, fmt, *args):  # one line per request only when asked
        if self.server.config.verbose:
            super().log_message(fmt, *args)

    # ---- responses
    def _send_json(self, status: int, obj: dict, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a malformed request line, too many headers, an unknown method) as
        JSON, like every other error."""
        self.close_connection = True
        status = 405 if code == 501 else code  # http.server says 501 for a method it has no do_* for
        self._refuse(RequestError(status, message or self.responses.get(code, ("error",))[0]))

    def _refuse(self, exc: RequestError) -> None:
        self.log_message("%s", f"{exc.status} {exc.message}")
        self._send_json(exc.status, exc.body(), exc.headers)

    # ---- routing: every method goes through one dispatcher, so a wrong one is a 405, not a 501
    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        try:
            self._check_host()
            self._authorize()
            path = unquote(urlsplit(self.path).path).rstrip("/")
            if path == "/v1/chat/completions":
                self._allow("POST")
                self._chat()
            elif path == "/v1/models" or path.startswith("/v1/models/"):
                self._allow("GET", "HEAD")
                self._models(path[len("/v1/models/"):] if path != "/v1/models" else None)
            else:
                raise RequestError(404, f"no route {path or '/'} (GET /v1/models, POST /v1/chat/completions)",
                                   code="unknown_url")
        except RequestError as exc:
            self._refuse(exc)
        except TimeoutError:
            self.close_connection = True
            self._refuse(RequestError(408, f"the client was silent for {self.server.config.timeout:g} s"))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left; nothing to answer
        except Exception as exc:  # a fault of ours: the client gets a 500 JSON, the console one line
            print(f"facr llm serve: 500 on {self.command} {self.path}: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)
            self._refuse(RequestError(500, f"internal error: {type(exc).__name__}", kind="server_error"))

    def _allow(self, *methods: str) -> None:
        if self.command not in methods:
            raise RequestError(405, f"{self.command} is not allowed here (use {' or '.join(methods)})",
                               headers={"Allow": ", ".join(methods)})

    def _check_host(self) -> None:
        # DNS rebinding guard: a web page that points its own name at 127.0.0.1 still sends that name.
        if self.server.config.remote:
            return
        host = (self.headers.get("Host") or "127.0.0.1").strip()
        name = host.rsplit("]", 1)[0].lstrip("[") if host.startswith("[") else host.rsplit(":", 1)[0]
        if not is_loopback(name):
            raise RequestError(403, f"Host {host!r} is not a loopback name; this server answers 127.0.0.1 / "
                                    "localhost only (start it with --allow-remote to serve other names)")

    def _authorize(self) -> None:
        key = self.server.config.api_key
        if key is None:
            return
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        # compare_digest: the time taken does not tell how much of a guessed key was right
        if not (scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())):
            raise RequestError(401, "missing or wrong API key: send Authorization: Bearer <key>",
                               code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    # ---- the two endpoints
    def _models(self, model_id: str | None) -> None:
        card = {"id": self.server.model_name, "object": "model", "created": self.server.created, "owned_by": "facr"}
        if model_id is None:
            self._send_json(200, {"object": "list", "data": [card]})
        elif model_id == self.server.model_name:
            self._send_json(200, card)
        else:
            raise RequestError(404, f"the model {model_id!r} is not served here; this server has "
                                    f"{self.server.model_name!r}", "model", "model_not_found")

    def _read_json(self) -> Any:
        """The request body, refused from its headers alone when it is chunked, unsized or too big."""
        # Browsers cannot send application/json cross-origin without a preflight, which gets a 405.
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self.body_unread = True
            raise RequestError(415, f"Content-Type must be application/json, got {ctype or 'none'}")
        if self.headers.get("Transfer-Encoding"):
            self.body_unread = True
            raise RequestError(411, "send the body with a Content-Length (Transfer-Encoding is not accepted)")
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) != 1 or not lengths[0].strip().isdigit():
            self.body_unread = bool(lengths)
            raise RequestError(411 if not lengths else 400, "send one numeric Content-Length with the body")
        length, limit = int(lengths[0]), self.server.config.max_request_bytes
        if length > limit:
            self.body_unread = True
            raise RequestError(413, f"the body is {length} bytes; this server takes at most {limit} "
                                    "(--max-request-bytes)", code="request_too_large")
        deadline = time.monotonic() + self.server.config.timeout
        chunks, left = [], length
        while left and time.monotonic() < deadline:  # each read also has the socket timeout
            chunk = self.rfile.read1(min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left and time.monotonic() >= deadline:
            raise TimeoutError
        if left:
            raise RequestError(400, "the body is shorter than its Content-Length")
        try:
            return json.loads(b"".join(chunks).decode("utf-8"), parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            detail = str(exc).splitlines()[0] if isinstance(exc, ValueError) else "nested too deeply"
            raise RequestError(400, f"the body is not JSON: {detail}") from None

    def _chat(self) -> None:
        srv = self.server
        request = parse_chat_request(self._read_json(), srv.model_name)
        if request.max_tokens is not None and request.max_tokens >= srv.context_length:
            raise RequestError(400, f"max_tokens must be below the model's context of {srv.context_length} "
                                    f"tokens, got {request.max_tokens}", "max_tokens")
        with srv.generate_lock:  # one generation at a time: the model and tokenizer are shared
            encoded = srv.chat.encode(request.messages)
            n_prompt = int(encoded["input_ids"].shape[1])
            max_tokens = _budget(request.max_tokens, n_prompt, srv.context_length, srv.config.max_new_tokens)
            stream = srv.current_stream = srv.chat.stream(encoded, max_new_tokens=max_tokens,
                                                          temperature=request.temperature, top_p=request.top_p,
                                                          seed=request.seed)
            reply = _Reply(request.stop)
            meta = {"id": f"chatcmpl-facr-{time.time_ns()}", "created": int(time.time()), "model": srv.model_name}
            if request.stream:
                self._send_events(request, stream, reply, meta, n_prompt)
            else:
                text = "".join(_pieces(stream, reply))
                usage = _usage(n_prompt, stream.completion_tokens)
                self._send_json(200, {**meta, "object": "chat.completion", "system_fingerprint": None, "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                     "finish_reason": "stop" if reply.stopped else stream.finish_reason}], "usage": usage})

    def _send_events(self, request: ChatRequest, stream, reply: _Reply, meta: dict, n_prompt: int) -> None:
        """The reply as server-sent events: a role chunk, content chunks, a chunk with finish_reason,
        the usage chunk when asked for (``stream_options.include_usage``), then ``[DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        usage_field = {"usage": None} if request.include_usage else {}

        def event(choices: list, **extra) -> None:
            obj = {**meta, "object": "chat.completion.chunk", "system_fingerprint": None, "choices": choices,
                   **usage_field, **extra}
            self.wfile.write(b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n")

        def delta(d: dict, finish: str | None = None) -> list:
            return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]

        event(delta({"role": "assistant", "content": ""}))
        try:
            for piece in _pieces(stream, reply):
                event(delta({"content": piece}))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client left or stopped reading: the generation is stopped
            return
        except Exception as exc:  # headers are sent: the error travels as an event, as OpenAI's does
            print(f"facr llm serve: error while streaming: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            err = RequestError(500, f"internal error: {type(exc).__name__}", kind="server_error")
            self.wfile.write(b"data: " + json.dumps(err.body()).encode("utf-8") + b"\n\n")
            return
        event(delta({}, "stop" if reply.stopped else stream.finish_reason))
        if request.include_usage:
            event([], usage=_usage(n_prompt, stream.completion_tokens))
        self.wfile.write(b"data: [DONE]\n\n")

    def _linger(self) -> None:
        """After refusing a body unread: answer, close our side, then read and drop what the client is
        still sending for up to LINGER_S, so it reads our reply instead of a connection reset."""
        sock = self.connection
        try:
            self.wfile.flush()
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_S
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                if not sock.recv(1 << 16):
                    break
        except OSError:
            pass


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _budget(max_tokens: int | None, n_prompt: int, context: int, default: int) -> int:
    """Tokens the reply may take: ``max_tokens`` when prompt + it fit the context (else a 400), or the
    server's default cut to what the context leaves."""
    asked = max_tokens
    if max_tokens is None:
        max_tokens = min(default, context - n_prompt)
    if max_tokens < 1 or n_prompt + max_tokens > context:
        need = "leave no room for a reply" if asked is None else f"and max_tokens asks for {asked} more"
        raise RequestError(400, f"this model's maximum context length is {context} tokens; the messages are "
                                f"{n_prompt} tokens {need}: shorten the messages or lower max_tokens", "messages",
                           "context_length_exceeded")
    return max_tokens


def _pieces(stream, reply: _Reply):
    """The visible pieces of ``stream`` through ``reply``; the generation is stopped and joined however
    the loop ends (stop string, client gone, error)."""
    try:
        for piece in stream:
            if out := reply.feed(piece):
                yield out
            if reply.stopped:
                return
        if out := reply.flush():
            yield out
    finally:
        stream.close()


class OpenAIServer(HTTPServer):
    """An HTTP server with a bounded pool: ``config.workers`` threads handle connections, up to
    ``config.queue`` more wait, any beyond get a 503 at once. Bind it (the constructor), then
    :meth:`attach` a model, then ``serve_forever()``."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.address_family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        self.request_queue_size = max(5, config.queue)  # the kernel's accept backlog
        self.chat, self.model_name, self.context_length = None, "", 0
        self.created = int(time.time())
        self.generate_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.workers + config.queue)
        self._open: set = set()  # connections being handled
        self._open_lock = threading.Lock()
        self.current_stream = None  # the generation in flight (one at a time)
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="facr-llm")
        try:  # after the attributes above: a failed bind calls server_close, which needs them
            super().__init__((config.host, config.port), _Handler)
        except OSError as exc:
            raise ServeConfigError("port", f"cannot listen on {config.host}:{config.port}: "
                                           f"{exc.strerror or exc}") from None

    def attach(self, chat, model_name: str) -> None:
        """Serve ``chat`` (a :class:`facr.external.llm.LocalChat`) as ``model_name``."""
        self.chat, self.model_name, self.context_length = chat, model_name, chat.context_length

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        self._pool.submit(self._work, request, client_address)

    def _work(self, request, client_address) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            self.finish_request(request, client_address)
        except Exception:  # socketserver's own report (one traceback per broken connection, to stderr)
            self.handle_error(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
            self._slots.release()  # before the close: a client that sees its connection end finds the slot free
            self.shutdown_request(request)

    def handle_error(self, request, client_address):
        if self.config.verbose:
            super().handle_error(request, client_address)

    def server_close(self):
        """Stop listening, then end the work in flight at once (the generation, the open connections),
        so Ctrl-C does not wait for a slow client or a long reply."""
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if (stream := self.current_stream) is not None:
            stream.close()
        with self._open_lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _refuse_busy(sock: socket.socket) -> None:
    """A 503 written from the accepting thread, which must not wait: a short timeout, then drop what
    the client has already sent so the close does not reset the connection under the reply."""
    err = RequestError(503, "every worker is busy and the queue is full; retry shortly", kind="server_error",
                       code="overloaded")
    data = json.dumps(err.body()).encode("utf-8")
    head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Retry-After: 1\r\nConnection: close\r\n\r\n").encode("ascii")
    try:
        sock.settimeout(1.0)
        sock.sendall(head + data)
        sock.setblocking(False)
        for _ in range(16):  # bounded: this thread accepts every connection
            if not sock.recv(1 << 16):
                break
    except OSError:  # BlockingIOError: nothing more to drop; anything else: the client is gone
        pass


def make_server(chat, model_name: str, config: ServeConfig | None = None) -> OpenAIServer:
    """A bound server answering with ``chat`` as ``model_name`` (``config.port`` 0 picks a free port)."""
    server = OpenAIServer(config or ServeConfig(port=0))
    server.attach(chat, model_name)
    return server
