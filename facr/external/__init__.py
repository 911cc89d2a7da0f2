"""Other reasoners facr audits: EmoLA and any image-text-to-text model (from their generations), and a
frozen instruct LLM handed the AU evidence as text.

* :mod:`facr.external.generations` — the generations JSONL (one line per face), the record key
  that joins it with a dataset, the prompts, and the one emotion reader;
* :mod:`facr.external.vlm` — ``facr emola generate --model hf-vlm``: a local transformers
  image-text-to-text model (a LLaVA folder) asked EmoLA's questions;
* :mod:`facr.external.emola` — ``facr emola generate --model emola``: a user's EmoLA checkout and
  weights, driven with EmoLA's own inputs (FABA-style JSON, 2d106det landmark features);
* :mod:`facr.external.llm` — the frozen-LLM backends (a local transformers model, an
  OpenAI-compatible chat endpoint) and :mod:`facr.external.openai_server`, a minimal endpoint.

The auditors that score all of these are in :mod:`facr.audit.external`.
"""
