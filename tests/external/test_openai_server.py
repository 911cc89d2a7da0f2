"""`facr llm serve`: the OpenAI-compatible endpoint driven by the official `openai` client and by raw
sockets, on free loopback ports, with the tiny from-config LM. What clients expect (usage, streaming,
models), every refusal as OpenAI-style JSON (400 per field, 401, 404, 405, 411, 413, 415, 503), the
limits (body size, context length, socket timeout, worker pool) and the CLI's checks before the model
loads. (The audit through the endpoint is in tests/audit/test_external.py.)"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import openai
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from facr.cli import main
from facr.external.llm import EndpointChat, LocalChat
from facr.external.openai_server import OpenAIServer, ServeConfig, _Reply
from facr.utils import free_port

MODEL = "tiny-qwen3"
ASK = [{"role": "user", "content": "the face shows AU12 and AU6"}]


@pytest.fixture(scope="module")
def chat():
    return LocalChat(MODEL, max_new_tokens=8, batch_size=1)


@contextlib.contextmanager
def serving(chat, **settings_):
    """A server for ``chat`` on a free loopback port, in a thread; shut down on exit."""
    server = OpenAIServer(ServeConfig(port=free_port(), **settings_))
    server.attach(chat, MODEL)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(chat):
    with serving(chat) as srv:
        yield srv


def client(server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=60)


def raw(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, parsed JSON body) of one plain http.client request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(data) if data else None
    finally:
        conn.close()


def post(server, body) -> tuple[int, dict]:
    status, _, obj = raw(server, "POST", "/v1/chat/completions", json.dumps(body).encode())
    return status, obj


def expected_greedy(chat, messages, max_new_tokens: int) -> tuple[int, int, str]:
    """(prompt tokens, completion tokens, finish reason) of a plain greedy generate, computed apart
    from the server: the prompt rendered by hand (the tiny tokenizer has no chat template)."""
    import torch

    prompt = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages) + "\nAssistant:"
    enc = chat.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        gen = chat.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                  pad_token_id=chat.tokenizer.pad_token_id)
    new = gen[0, enc["input_ids"].shape[1]:].tolist()
    finish = "stop" if new and new[-1] == chat.tokenizer.eos_token_id else "length"
    return enc["input_ids"].shape[1], len(new), finish


# ------------------------------------------------------------------ what clients expect
def test_openai_client_gets_the_local_models_reply_with_token_usage(server, chat):
    reply = client(server).chat.completions.create(model=MODEL, messages=ASK, max_tokens=8)
    n_prompt, n_new, finish = expected_greedy(chat, ASK, 8)
    assert reply.choices[0].message.content == chat([ASK])[0]
    assert reply.choices[0].finish_reason == finish
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == \
        (n_prompt, n_new, n_prompt + n_new)
    assert reply.object == "chat.completion" and reply.model == MODEL


def test_stream_chunks_join_to_the_same_reply_then_finish_usage_and_done(server):
    c = client(server)
    whole = c.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8)
    chunks = list(c.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8, stream=True,
                                            stream_options={"include_usage": True}))
    with_choices = [ch for ch in chunks if ch.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in with_choices) == whole.choices[0].message.content
    assert len(with_choices) >= 3  # role, at least one piece, the finish: it was streamed, not sent whole
    assert [ch.choices[0].finish_reason for ch in with_choices] == [None] * (len(with_choices) - 1) + \
        [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    # the wire format itself: server-sent events ending in [DONE]
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    conn.request("POST", "/v1/chat/completions", json.dumps({"messages": ASK, "max_tokens": 3, "stream": True}),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    assert resp.getheader("Content-Type") == "text/event-stream"
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert "usage" not in json.loads(events[-2][6:])  # not asked for: no usage field, as OpenAI does


def test_stop_string_cuts_the_reply_streamed_or_not_and_seeded_sampling_repeats(server):
    c = client(server)
    ask = dict(model=MODEL, messages=ASK, max_tokens=16, temperature=1.0, seed=3)
    full = c.chat.completions.create(**ask).choices[0].message.content
    assert c.chat.completions.create(**ask).choices[0].message.content == full  # same seed, same sample
    words = full.split()
    stop = next(w for w in words[1:] if full.find(w) > 0)
    cut = c.chat.completions.create(**ask, stop=[stop])
    assert cut.choices[0].message.content == full[:full.find(stop)].rstrip()
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < 16  # generation stopped at the stop string, not at max_tokens
    streamed = c.chat.completions.create(**ask, stop=stop, stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in streamed if ch.choices) == \
        cut.choices[0].message.content


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=" ab#\n", max_size=30), cuts=st.lists(st.integers(0, 30), max_size=6),
       stops=st.lists(st.text(alphabet=" ab#", min_size=1, max_size=3), max_size=3))
@example(text="a#a", cuts=[2], stops=["#", "a#a"])  # a longer stop string that starts first completes later
def test_reply_pieces_join_to_the_whole_reply_trimmed_and_cut(text, cuts, stops):
    """However the decoded text is split into pieces, what is sent equals the whole text stripped and
    cut before the first stop string (the non-streamed reply)."""
    bounds = sorted({0, len(text), *[min(c, len(text)) for c in cuts]})
    reply, sent = _Reply(tuple(stops)), []
    for a, b in zip(bounds, bounds[1:]):
        sent.append(reply.feed(text[a:b]))
        if reply.stopped:
            break
    else:
        sent.append(reply.flush())
    body = text.lstrip()
    found = [i for i in (body.find(s) for s in stops) if i >= 0]
    assert "".join(sent) == (body[:min(found)] if found else body).rstrip()
    assert reply.stopped == bool(found)


def test_models_list_and_retrieve(server):
    c = client(server)
    assert [m.id for m in c.models.list().data] == [MODEL]
    assert c.models.retrieve(MODEL).owned_by == "facr"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("gpt-4o")


def test_requests_at_once_are_served_in_turn_with_the_same_answer(chat):
    with serving(chat, workers=3) as srv:
        answers: list = []
        threads = [threading.Thread(target=lambda: answers.append(post(srv, {"messages": ASK, "max_tokens": 6})))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert [a[0] for a in answers] == [200, 200, 200]
    assert len({a[1]["choices"][0]["message"]["content"] for a in answers}) == 1


# ------------------------------------------------------------------ refusals
def test_temperature_hot_is_a_400_naming_the_field_through_the_openai_client(server):
    with pytest.raises(openai.BadRequestError) as info:
        client(server).chat.completions.create(model=MODEL, messages=ASK, temperature="hot")
    assert info.value.status_code == 400
    assert info.value.body == {"message": 'temperature must be a number, got "hot"', "type": "invalid_request_error",
                               "param": "temperature", "code": None}


@pytest.mark.parametrize("body, param", [
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "assistant", "content": "x", "tool_calls": [{"id": "1"}]}]}, "messages[0].tool_calls"),
    ({"messages": ASK, "temperature": 2.5}, "temperature"),
    ({"messages": ASK, "temperature": True}, "temperature"),
    ({"messages": ASK, "top_p": 0}, "top_p"),
    ({"messages": ASK, "max_tokens": 0}, "max_tokens"),
    ({"messages": ASK, "max_tokens": 4.0}, "max_tokens"),
    ({"messages": ASK, "max_tokens": 600}, "max_tokens"),  # over the tiny model's 512-token context
    ({"messages": ASK, "max_tokens": 4, "max_completion_tokens": 5}, "max_completion_tokens"),
    ({"messages": ASK, "n": 2}, "n"),
    ({"messages": ASK, "stop": [""]}, "stop"),
    ({"messages": ASK, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": ASK, "stream": "yes"}, "stream"),
    ({"messages": ASK, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"messages": ASK, "seed": "1"}, "seed"),
    ({"messages": ASK, "frequency_penalty": 0.5}, "frequency_penalty"),
    ({"messages": ASK, "logprobs": True}, "logprobs"),
    ({"messages": ASK, "tools": [{"type": "function"}]}, "tools"),
    ({"messages": ASK, "response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": ASK, "model": 7}, "model"),
    ({"messages": ASK, "best_of": 2}, "best_of"),
])
def test_each_bad_field_is_a_400_json_error_naming_it(server, body, param):
    status, obj = post(server, body)
    assert status == 400
    assert obj["error"]["param"] == param and obj["error"]["type"] == "invalid_request_error"
    assert obj["error"]["code"] is None and obj["error"]["message"]


def test_neutral_values_and_nulls_of_unserved_fields_are_accepted(server):
    status, obj = post(server, {"messages": [{"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
                                             {"role": "user", "content": "hi", "name": "u", "refusal": None}],
                                "model": MODEL, "n": 1, "temperature": None, "frequency_penalty": 0,
                                "logprobs": False, "tools": [], "response_format": {"type": "text"},
                                "max_tokens": 2, "user": "me"})
    assert status == 200 and obj["usage"]["completion_tokens"] <= 2


def test_unknown_model_is_404_model_not_found(server):
    status, obj = post(server, {"model": "gpt-4o", "messages": ASK})
    assert status == 404 and obj["error"]["code"] == "model_not_found" and obj["error"]["param"] == "model"


def test_prompt_beyond_the_context_is_400_and_a_long_one_gets_what_is_left(server, chat):
    status, obj = post(server, {"messages": [{"role": "user", "content": "the " * 20000}]})  # ~40x the context
    assert status == 400 and obj["error"]["code"] == "context_length_exceeded"
    assert obj["error"]["param"] == "messages" and "512 tokens" in obj["error"]["message"]
    long = [{"role": "user", "content": "the " * 500}]
    n_prompt = expected_greedy(chat, long, 1)[0]
    assert 500 < n_prompt < 512 - 1  # room for a short reply, not for the default 96 tokens
    status, obj = post(server, {"messages": long, "max_tokens": 512 - n_prompt + 1})
    assert status == 400 and obj["error"]["code"] == "context_length_exceeded"
    status, obj = post(server, {"messages": long})  # no max_tokens: the default 96, cut to what is left
    assert status == 200 and obj["usage"]["prompt_tokens"] == n_prompt
    assert obj["usage"]["total_tokens"] <= 512


def test_unknown_path_is_404_and_wrong_method_405_as_json(server):
    status, _, obj = raw(server, "GET", "/v2/nothing")
    assert status == 404 and obj["error"]["type"] == "invalid_request_error"
    status, headers, obj = raw(server, "GET", "/v1/chat/completions")
    assert status == 405 and headers["Allow"] == "POST" and "POST" in obj["error"]["message"]
    status, _, obj = raw(server, "DELETE", "/v1/models")
    assert status == 405 and obj["error"]["message"]
    status, _, obj = raw(server, "BREW", "/v1/models")  # a method http.server has never heard of
    assert status == 405 and obj["error"]["message"]


@pytest.mark.parametrize("body", [b'{"messages": [', b'{"messages": NaN}', b"[" * 200_000, b"\xff\xfe{}"])
def test_malformed_json_is_a_400(server, body):
    status, _, obj = raw(server, "POST", "/v1/chat/completions", body)
    assert status == 400 and obj["error"]["message"].startswith("the body is not JSON")


def _exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, then read the reply until the server closes (bounded by ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_big_content_length_is_413_before_any_body_is_sent(server):
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n")
    start = time.monotonic()
    reply = _exchange(server.server_address[1], head)
    assert reply.startswith(b"HTTP/1.0 413 ")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_too_large"
    assert time.monotonic() - start < 5  # answered at once, not after waiting for 50 MB


def test_a_big_body_actually_sent_still_reads_its_413(server):
    # 40 MiB outgrows the socket buffers: closing without reading it would reset the connection
    status, _, obj = raw(server, "POST", "/v1/chat/completions", b" " * (40 << 20))
    assert status == 413 and "at most 1048576" in obj["error"]["message"]


def test_chunked_or_unsized_bodies_are_411_and_other_content_types_415(server):
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    chunked = _exchange(server.server_address[1], head + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.0 411 ")
    assert _exchange(server.server_address[1], head + b"\r\n").startswith(b"HTTP/1.0 411 ")
    status, _, obj = raw(server, "POST", "/v1/chat/completions", b"{}", {"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in obj["error"]["message"]


def test_a_host_header_naming_another_site_is_refused(server):
    status, _, obj = raw(server, "GET", "/v1/models", headers={"Host": "attacker.example:8080"})
    assert status == 403 and "loopback" in obj["error"]["message"]


def test_half_open_connection_times_out_and_a_full_pool_answers_503(chat):
    with serving(chat, timeout=0.5, workers=1, queue=0) as srv:
        port = srv.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            idle.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
            start = time.monotonic()
            busy = _exchange(port, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert busy.startswith(b"HTTP/1.0 503 ")
            assert json.loads(busy.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "overloaded"
            assert idle.recv(1024) == b""  # closed by the server
            assert 0.4 < time.monotonic() - start < 5
        status, _, obj = raw(srv, "GET", "/v1/models")  # the worker is free again
        assert status == 200 and obj["data"][0]["id"] == MODEL


def test_closing_the_server_ends_open_connections_at_once(chat):
    """Ctrl-C (server_close) does not wait out a silent client's 30 s timeout."""
    with contextlib.ExitStack() as stack:
        with serving(chat, timeout=30) as srv:
            idle = stack.enter_context(socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=10))
            idle.sendall(b"GET /v1/models HTTP/1.1\r\n")  # and never the rest
            assert raw(srv, "GET", "/v1/models")[0] == 200  # accepted after the idle one: that one is in a worker
            start = time.monotonic()
        assert idle.recv(1024) == b""
        assert time.monotonic() - start < 5


def test_api_key_is_required_when_set(chat, monkeypatch):
    with serving(chat, api_key="s3cret-key") as srv:
        with pytest.raises(openai.AuthenticationError) as info:
            client(srv, "wrong").chat.completions.create(model=MODEL, messages=ASK, max_tokens=2)
        assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"
        status, headers, obj = raw(srv, "GET", "/v1/models")
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
        reply = client(srv, "s3cret-key").chat.completions.create(model=MODEL, messages=ASK, max_tokens=2)
        assert reply.usage.completion_tokens <= 2
        # facr's own client takes the key from the environment, and says what the server said without it
        monkeypatch.delenv("FACR_LLM_API_KEY", raising=False)
        with pytest.raises(Exception, match="HTTP 401: missing or wrong API key"):
            EndpointChat(srv.url, max_new_tokens=2).complete(ASK)
        monkeypatch.setenv("FACR_LLM_API_KEY", "s3cret-key")
        assert EndpointChat(srv.url, max_new_tokens=2).complete(ASK) == reply.choices[0].message.content


# ------------------------------------------------------------------ the CLI
@pytest.fixture
def no_loading(monkeypatch):
    """Fail loudly if the CLI loads a model; the calls are recorded."""
    import facr.external.llm as llm

    calls: list = []
    monkeypatch.setattr(llm, "LocalChat", lambda *a, **k: calls.append(a) or pytest.fail("the model was loaded"))
    return calls


@pytest.mark.parametrize("flags, named", [
    (["--port", "70000"], "--port"),
    (["--port", "-1"], "--port"),
    (["--workers", "0"], "--workers"),
    (["--timeout", "nan"], "--timeout"),
    (["--max-request-bytes", "10"], "--max-request-bytes"),
    (["--api-key", "has space"], "--api-key"),
    (["--host", "0.0.0.0"], "--host"),
    (["--host", "0.0.0.0", "--allow-remote"], "--allow-remote"),
])
def test_bad_serve_flags_exit_2_in_one_line_before_the_model_loads(flags, named, no_loading, capsys, monkeypatch):
    monkeypatch.delenv("FACR_LLM_API_KEY", raising=False)
    assert main(["llm", "serve", "--model", MODEL, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"facr: {named}: ") and err.count("\n") == 1
    assert no_loading == []


def test_a_port_in_use_exits_2_before_the_model_loads(no_loading, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code = main(["llm", "serve", "--model", MODEL, "--port", str(taken.getsockname()[1])])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("facr: --port: cannot listen on 127.0.0.1:") and err.count("\n") == 1
    assert no_loading == []


def test_remote_hosts_pass_the_checks_only_with_allow_remote_and_a_key():
    config = ServeConfig(host="0.0.0.0", port=0, allow_remote=True, api_key="k3y")
    assert config.remote and not ServeConfig(host="::1", port=0).remote and not ServeConfig(host="localhost").remote


def test_cli_serves_with_the_key_from_the_environment():
    env = {**os.environ, "FACR_LLM_API_KEY": "env-key-123"}
    proc = subprocess.Popen([sys.executable, "-m", "facr", "llm", "serve", "--model", MODEL, "--port",
                             str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/v1) \(OpenAI-compatible chat, context 512 tokens, API key "
                          r"required;", line)
        assert match, f"{line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        c = openai.OpenAI(base_url=match.group(1), api_key="env-key-123", max_retries=0, timeout=60)
        assert c.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2).usage.total_tokens > 2
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=match.group(1), api_key="nope", max_retries=0).models.list()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
