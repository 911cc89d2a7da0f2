"""Chat backends for the frozen-LLM reasoner: a local transformers model, or an OpenAI-compatible
``/v1/chat/completions`` endpoint (llama.cpp's ``llama-server``, vLLM, ``facr llm serve``, ...).

Both take a list of conversations (each a list of ``{"role", "content"}`` messages) and return one
reply per conversation, decoded greedily (temperature 0), so an audit re-run gives the same
answers. The local backend batches (left padding); the endpoint backend sends requests from a
small thread pool. :meth:`LocalChat.stream` yields one reply piece by piece (``facr llm serve``).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

from facr.errors import FacrError

Conversation = Sequence[dict]

# The context a model gets when its config names none: the smallest any supported backbone has.
FALLBACK_CONTEXT = 2048
# `facr llm serve`'s API key, read by the server and sent by EndpointChat (an environment variable stays out of ps)
API_KEY_ENV = "FACR_LLM_API_KEY"


def render_prompt(tokenizer, messages: Conversation) -> str:
    """The model's chat template applied to ``messages`` with the assistant turn opened; a tokenizer
    without a template gets ``System: … / User: … / Assistant:`` lines."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


class LocalChat:
    """A frozen local causal LM (a registry name of :mod:`facr.verbalizer.backbones`, or a folder)."""

    def __init__(self, name_or_path: str, *, max_new_tokens: int = 64, batch_size: int = 16,
                 load_in_4bit: bool = False, model=None, tokenizer=None):
        import torch

        if model is None:
            from facr.verbalizer.backbones import load_backbone

            model, tokenizer = load_backbone(name_or_path, load_in_4bit=load_in_4bit)
        self.name = name_or_path
        self.model, self.tokenizer = model.eval(), tokenizer
        if not load_in_4bit:
            self.model.to("cuda" if torch.cuda.is_available() else "cpu")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def describe(self) -> str:
        return f"local transformers model {self.name}"

    @property
    def context_length(self) -> int:
        """Tokens the model attends to (prompt + reply), from its config; :data:`FALLBACK_CONTEXT` when it
        names none."""
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
            value = getattr(config, key, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        # Tokenizers without a limit report a huge sentinel (1e30): only a plausible value counts.
        limit = getattr(self.tokenizer, "model_max_length", None)
        return limit if isinstance(limit, int) and 0 < limit < 10**7 else FALLBACK_CONTEXT

    def encode(self, messages: Conversation):
        """The prompt of one conversation as token ids ``(1, n)`` with its attention mask, on the model's
        device, exactly as :meth:`__call__` builds it."""
        enc = self.tokenizer([render_prompt(self.tokenizer, messages)], return_tensors="pt",
                             add_special_tokens=False)
        return enc.to(next(self.model.parameters()).device)

    def stream(self, encoded, *, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
               seed: int | None = None) -> "TextStream":
        """One reply to ``encoded`` (from :meth:`encode`), decoded as it is generated. ``temperature`` 0 is
        greedy (the same tokens as :meth:`__call__`); above 0 samples with nucleus ``top_p``, seeded by
        ``seed`` when given. Not thread-safe: one stream at a time per model."""
        import torch

        sampling: dict = dict(do_sample=False)
        if temperature > 0:
            if seed is not None:
                torch.manual_seed(seed)
            # top_k=0: OpenAI's sampling has no top-k cut, transformers' default would add one (50).
            sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        return TextStream(self, encoded, dict(max_new_tokens=max_new_tokens, **sampling))

    def __call__(self, conversations: Sequence[Conversation], progress: bool = False) -> list[str]:
        import torch
        from tqdm.auto import tqdm

        prompts = [render_prompt(self.tokenizer, c) for c in conversations]
        # Longest first: similar lengths share a batch, so little padding is decoded.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out: list[str] = [""] * len(prompts)
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        device = next(self.model.parameters()).device
        try:
            starts = range(0, len(order), self.batch_size)
            for s in tqdm(starts, desc="llm", unit="batch", disable=not progress, dynamic_ncols=True):
                idx = order[s: s + self.batch_size]
                enc = self.tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(device)
                with torch.no_grad():
                    gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                              pad_token_id=self.tokenizer.pad_token_id)
                texts = self.tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                for i, t in zip(idx, texts):
                    out[i] = t.strip()
        finally:
            self.tokenizer.padding_side = side
        return out


class TextStream:
    """One generation in a background thread: iterate it for the reply's text pieces as they are decoded
    (their concatenation is the full decode, special tokens skipped); :meth:`close` stops it early and
    waits for the thread. After the pieces: ``completion_tokens`` and ``finish_reason`` (``"length"``
    when ``max_new_tokens`` ran out, else ``"stop"``)."""

    _END = object()

    def __init__(self, chat: LocalChat, encoded, generate_kwargs: dict):
        self.chat, self.encoded, self.kwargs = chat, encoded, generate_kwargs
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self._ids: list[int] = []
        self._prompt_seen = False
        self._text = ""
        self._pieces: queue.Queue = queue.Queue()
        self._halt = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="facr-llm-generate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        halt = self._halt

        class _Halt(StoppingCriteria):  # the consumer asked to stop (stop string, client gone)
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool, device=input_ids.device)

        tok = self.chat.tokenizer
        try:
            with torch.no_grad():
                self.chat.model.generate(**self.encoded, **self.kwargs, streamer=self,
                                         stopping_criteria=StoppingCriteriaList([_Halt()]),
                                         pad_token_id=tok.pad_token_id)
            eos = self.chat.model.generation_config.eos_token_id
            eos = set(eos if isinstance(eos, list) else [eos if eos is not None else tok.eos_token_id])
            ran_out = len(self._ids) >= self.kwargs["max_new_tokens"] and not (self._ids and self._ids[-1] in eos)
            self.finish_reason = "length" if ran_out else "stop"
        except Exception as exc:  # re-raised in the consumer's thread, which owns the request
            self._error = exc
        finally:
            self._pieces.put(self._END)

    # transformers' streamer protocol: put() gets the prompt first, then each new token; end() once.
    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._ids.extend(int(t) for t in value.reshape(-1).tolist())
        self.completion_tokens = len(self._ids)
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        # Decoding the whole reply each time, not token by token, keeps multi-token characters and
        # tokenizer clean-ups exact; an unfinished UTF-8 character ("\ufffd" at the end) waits.
        text = self.chat.tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.startswith(self._text) and (final or not text.endswith("\ufffd")) and len(text) > len(self._text):
            self._pieces.put(text[len(self._text):])
            self._text = text

    def __iter__(self) -> Iterator[str]:
        while (piece := self._pieces.get()) is not self._END:
            yield piece
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop generating (at the next token) and wait for the thread."""
        self._halt.set()
        self._thread.join()


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The message of an OpenAI-style JSON error body, else its first line, else the HTTP reason."""
    text = exc.read().decode("utf-8", "replace").strip()
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError, RecursionError):
        message = None
    if isinstance(message, str) and message.strip():
        return message.strip().splitlines()[0]
    return text.splitlines()[0] if text else str(exc.reason)


class EndpointChat:
    """An OpenAI-compatible chat endpoint (``base_url`` ends in ``/v1``)."""

    def __init__(self, base_url: str, *, model: str | None = None, max_new_tokens: int = 64, workers: int = 4,
                 timeout: float = 300.0, api_key: str | None = None):
        self.base_url = base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise FacrError(base_url, "--llm-url must be an http(s) URL such as http://127.0.0.1:8080/v1")
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.workers = max(1, workers)
        self.timeout = timeout
        # facr llm serve's key when the caller names none (audit --llm-url has no flag for a key)
        self.api_key = api_key or os.environ.get(API_KEY_ENV) or None

    def describe(self) -> str:
        return f"OpenAI-compatible endpoint {self.base_url} (model {self.model or 'the server default'})"

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.base_url + path, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise FacrError(self.base_url, f"the endpoint answered HTTP {exc.code}: {_error_detail(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FacrError(self.base_url, f"cannot reach the endpoint: {reason}") from None
        except ValueError:
            raise FacrError(self.base_url, "the endpoint's reply is not JSON") from None

    def complete(self, messages: Conversation) -> str:
        body = {"messages": list(messages), "temperature": 0, "max_tokens": self.max_new_tokens}
        if self.model:
            body["model"] = self.model
        reply = self._post("/chat/completions", body)
        try:
            return str(reply["choices"][0]["message"]["content"]).strip()
        except (KeyError, IndexError, TypeError):
            raise FacrError(self.base_url, "the reply has no choices[0].message.content (not an OpenAI-compatible "
                                           "chat endpoint?)") from None

    def __call__(self, conversations: Sequence[Conversation], progress: bool = False) -> list[str]:
        from tqdm.auto import tqdm

        with ThreadPoolExecutor(self.workers) as pool:
            return list(tqdm(pool.map(self.complete, conversations), total=len(conversations), desc="llm",
                             unit="query", disable=not progress, dynamic_ncols=True))
