"""Each auditor's own options, typed: what ``AuditRequest.options`` (``facr audit``'s auditor flags, an
experiment arm's ``options:``) may hold for it, with one default and one help text per setting.

:func:`facr.audit.auditors.options_of` reads a request's options as one of these: every value is
checked against its field (type, choices, range) and a setting the auditor does not take is one line
naming it, instead of being ignored. ``facr audit`` builds its auditor flags from these fields
(:mod:`facr.flags`). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from facr.audit import GENERATE_BATCH_SIZE
from facr.config import check_range

PIXEL_METHODS = ("auto", "rerender", "occlusion")
# facr.explain.maps.METHODS, without torch
MAP_METHOD_NAMES = ("gradcam", "cefam", "rollout", "agcm", "attention", "random")


def _pixel_cf(**extra):
    return field(default=None, metadata={
        "nargs": "?", "const": "auto", "choices": PIXEL_METHODS, "help": (
            "also intervene on the image: do(AU_k = 0) by re-rendering the synthetic benchmark (exact; and hue / "
            "identity / pose / light changed) or by inpainting AU k's region on other data; pixel AU sensitivity "
            "/ leakage, pixel CF sensitivity / invariance, nuisance z shift, latent-vs-pixel agreement (auto, "
            "the value without one: rerender where the data is the benchmark). --model emola: score the "
            "occluded answers its generations carry"), **extra})


def _check_pixel(options) -> None:
    if options.pixel_cf is not None and options.pixel_cf not in PIXEL_METHODS:
        raise ValueError(f"pixel_cf must be one of {', '.join(PIXEL_METHODS)}, got {options.pixel_cf!r}")
    if options.pixel_limit is not None and options.pixel_limit < 1:
        raise ValueError(f"pixel_limit must be >= 1, got {options.pixel_limit}")


@dataclass
class ReasonerOptions:
    """``--model <reasoner>``: the latent audit, and what may be added to it."""

    maps: bool = field(default=False, metadata={"help": (
        "also score where each AU is seen: NRA, EPG and hit rate of every map method against the benchmark's "
        "AU masks (or landmark ROI maps), with a random-map baseline, and CE-FAM's contributions against do() "
        "effects")})
    map_methods: list[str] | None = field(default=None, metadata={
        "flag": "--map-method", "action": "append", "choices": MAP_METHOD_NAMES,
        "help": "map method(s) to score (repeatable; default: every one that applies)"})
    pixel_cf: str | None = _pixel_cf()
    pixel_limit: int | None = field(default=None, metadata={
        "help": "the first N audited faces only, for the pixel figures (default: all; 480 take ~1 min)"})

    def __post_init__(self):
        bad = [m for m in self.map_methods or () if m not in MAP_METHOD_NAMES]
        if bad:
            raise ValueError(f"unknown map method {bad[0]!r} (choose from {', '.join(MAP_METHOD_NAMES)})")
        _check_pixel(self)


@dataclass
class VerbalizerOptions(ReasonerOptions):
    """``--model <verbalizer>``: with ``rationale`` the audit of its text; without, the latent audit of
    its reasoner (the reasoner's options apply to it)."""

    rationale: bool = field(default=False, metadata={"help": (
        "audit the generated text: regenerate under every do(z_k = 0) and read the named AUs")})
    modes: list[str] | None = field(default=None, metadata={
        "flag": "--mode", "action": "append", "choices": ("gated", "soft", "ungated"),
        "help": "decoding mode(s) to audit (repeatable; default: all three, the checkpoint's mode first)"})
    reasoner: str | None = field(default=None, metadata={
        "help": "verbalizer: the reasoner it speaks for (default: its config's); frozen-llm: the reasoner whose "
                "z is the evidence"})
    backbone: str | None = field(default=None, metadata={"help": "the verbalizer's backbone instead of its config's"})
    generate_batch_size: int = field(default=GENERATE_BATCH_SIZE, metadata={
        "help": "rationales (or frozen-LLM queries) per generate call"})

    def __post_init__(self):
        super().__post_init__()
        check_range("generate_batch_size", self.generate_batch_size, 1, 4096)


@dataclass
class EmolaOptions:
    """``--model emola``: EmoLA (or any model) from a generations file."""

    generations: str | None = field(default=None, metadata={"help": (
        "emola: the generations JSONL (facr emola generate writes one; lines without labels are joined with "
        "--data records by image)")})
    pixel_cf: str | None = _pixel_cf()
    pixel_limit: int | None = None  # not read: the occluded answers are what the file holds

    def __post_init__(self):
        _check_pixel(self)


@dataclass
class FrozenLLMOptions:
    """``--model frozen-llm``: a frozen instruct LLM handed the AU evidence as text."""

    llm: str = field(default="smollm2-135m", metadata={"help": "frozen-llm: a local model, registry name or folder"})
    llm_url: str | None = field(default=None, metadata={
        "help": "frozen-llm: an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1"})
    llm_model: str | None = field(default=None, metadata={
        "help": "frozen-llm: the model name to send to the endpoint"})
    max_new_tokens: int = field(default=96, metadata={"help": "frozen-llm: tokens per answer"})
    workers: int = field(default=4, metadata={"help": "frozen-llm: parallel requests to the endpoint"})
    generate_batch_size: int = GENERATE_BATCH_SIZE
    load_in_4bit: bool = False
    reasoner: str | None = None
    evidence: str | None = field(default=None, metadata={
        "choices": ("labels", "reasoner"),
        "help": "frozen-llm: the AU evidence it is handed (default: reasoner with --reasoner, else labels)"})
    pixel_cf: str | None = None  # refused with its reason: a text reasoner has no pixels

    def __post_init__(self):
        check_range("max_new_tokens", self.max_new_tokens, 1, 4096)
        check_range("workers", self.workers, 1, 64)
        check_range("generate_batch_size", self.generate_batch_size, 1, 4096)
        if self.evidence not in (None, "labels", "reasoner"):
            raise ValueError(f"evidence must be labels or reasoner, got {self.evidence!r}")
