"""Chat backends for the frozen-LLM reasoner: a local transformers model, or an OpenAI-compatible
``/v1/chat/completions`` endpoint (llama.cpp's ``llama-server``, vLLM, ``facr llm serve``, ...).

Both take a list of conversations (each a list of ``{"role", "content"}`` messages) and return one
reply per conversation, decoded greedily (temperature 0), so an audit re-run gives the same
answers. The local backend batches (left padding); the endpoint backend sends requests from a
small thread pool.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from facr.errors import FacrError

Conversation = Sequence[dict]


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
        self.api_key = api_key

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
            detail = exc.read().decode("utf-8", "replace").strip().splitlines()
            raise FacrError(self.base_url, f"the endpoint answered HTTP {exc.code}: {detail[0] if detail else exc.reason}") from None
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
