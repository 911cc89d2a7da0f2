"""``facr llm serve``: a local LM as an OpenAI-compatible chat endpoint (for ``facr audit --model
frozen-llm --llm-url`` or any OpenAI client)."""

from __future__ import annotations

import os
import sys

from facr.cli.base import Command, Group, example
from facr.flags import add_fields, given

# the ServeConfig fields `facr llm serve` sets (their flags, help and defaults are the dataclass's)
SERVE_FIELDS = ("host", "port", "allow_remote", "api_key", "workers", "queue", "timeout", "max_request_bytes",
                "max_new_tokens", "verbose")


def cmd_llm_serve(args) -> int:
    from facr.external.llm import LocalChat
    from facr.external.openai_server import API_KEY_ENV, OpenAIServer, ServeConfig

    settings = given(args, ServeConfig, SERVE_FIELDS)
    config = ServeConfig(**{**settings, "api_key": settings.get("api_key") or os.environ.get(API_KEY_ENV) or None})
    server = OpenAIServer(config)  # bound before the model loads: a bad or busy port costs nothing
    try:
        server.attach(LocalChat(args.model, max_new_tokens=config.max_new_tokens, batch_size=1), args.model)
        if config.remote:
            print(f"facr: warning: serving {config.host} over plain HTTP: the API key and the conversations cross the "
                  "network unencrypted (put a TLS proxy in front outside a trusted network)", file=sys.stderr)
        print(f"serving {args.model} at {server.url} (OpenAI-compatible chat, context {server.context_length} "
              f"tokens{', API key required' if config.api_key else ''}; Ctrl-C stops)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _serve_arguments(p) -> None:
    from facr.external.openai_server import ServeConfig

    p.add_argument("--model", default="smollm2-135m", help="registry name or folder (default smollm2-135m)")
    add_fields(p, ServeConfig, SERVE_FIELDS)


GROUP = Group("llm", "serve a local LM as an OpenAI-compatible chat endpoint", commands=(
    Command("serve", "an OpenAI-compatible /v1/chat/completions endpoint for a local model (greedy)",
            _serve_arguments, cmd_llm_serve,
            description="Serve a local model (a backbone registry name such as smollm2-135m, or a folder) at "
                        "http://HOST:PORT/v1 with GET /v1/models and POST /v1/chat/completions (greedy unless a "
                        "temperature is asked, one generation at a time, usage in every reply, stream: true as "
                        "server-sent events), for facr audit --model frozen-llm --llm-url or any OpenAI client on "
                        "machines without llama.cpp or vLLM. Binds 127.0.0.1 by default; bad requests get "
                        "OpenAI-style JSON errors (400, 401, 413, ...).",
            epilog=example("facr llm serve --model smollm2-135m --port 8080 &",
                           "facr audit --model frozen-llm --llm-url http://127.0.0.1:8080/v1 --data demo-out/synth "
                           "--limit 16",
                           "FACR_LLM_API_KEY=$(openssl rand -hex 16) facr llm serve --host 0.0.0.0 --allow-remote")),
))
