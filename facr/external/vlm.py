"""Ask a local vision-language model EmoLA's two questions about each face.

Any 🤗 transformers image-text-to-text model saved with ``save_pretrained`` (a LLaVA-1.5 folder in
the ``llava-hf`` layout, Qwen2-VL, Gemma 3, ...) or a hub id already in the local cache::

    model, processor = load_vlm("models/llava-1.5-7b-hf")
    rows = generate_vlm(model, processor, records, root, source="llava-1.5-7b-hf")
    write_generations("llava.jsonl", rows)       # then: facr audit --model emola

Decoding is greedy, so a generations file is a function of the model, the faces and the prompts.
Checkpoints in the original LLaVA repository's layout (``model_type: llava_llama``, as EmoLA ships)
must first be converted to the transformers layout (transformers' ``convert_llava_weights_to_hf.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from facr.errors import FacrError
from facr.external.generations import PROMPTS, generation_row, image_of, record_key
from facr.utils import loads_json

# LLaVA-1.5's conversation format, for a processor that carries no chat template.
LLAVA_PROMPT = "USER: <image>\n{prompt} ASSISTANT:"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _model_type(folder: Path) -> str | None:
    """``model_type`` of a local folder's config.json, read without transformers (None if unreadable)."""
    try:
        value = loads_json((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _target_device(name: str, device: str | None, load_in_4bit: bool):
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError):
        raise FacrError(name, f"device {device!r} is not a torch device (cpu, cuda, cuda:1, mps)") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise FacrError(name, f"device {device!r} asked for, but no CUDA GPU is available")
    if load_in_4bit and target.type != "cuda":
        raise FacrError(name, f"4-bit loading needs a CUDA device, got {device!r}")
    return target


def load_vlm(path: str, *, load_in_4bit: bool = False, device: str | None = None):
    """(model, processor) of an image-text-to-text model: a local folder (model and processor saved
    with ``save_pretrained``) or a hub id already in the local cache.

    ``AutoProcessor`` + ``AutoModelForImageTextToText``; a LLaVA-family config that auto class does
    not map loads as ``LlavaForConditionalGeneration``. ``device``: where the model goes (default:
    CUDA when available, else CPU; float32 on a CPU, the checkpoint's dtype on a GPU).
    ``load_in_4bit``: NF4 through bitsandbytes, CUDA only (``pip install bitsandbytes``).
    Every problem with ``path`` is a :class:`FacrError` naming it.
    """
    import torch

    name = os.fspath(path)
    if load_in_4bit and not torch.cuda.is_available():
        raise FacrError(name, "4-bit loading needs a CUDA GPU (bitsandbytes); load it in full precision on a CPU")
    target = _target_device(name, device, load_in_4bit)
    folder = Path(name)
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise FacrError(name, "not a model folder (no config.json): give a folder with a model and its processor "
                              "saved by save_pretrained, or a hub id in the local cache")
    if folder.is_file():
        raise FacrError(name, "not a model folder (a file): give the folder that holds config.json")
    if not folder.exists() and (folder.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1):
        # Clearly a path, not a hub id ("owner/name"): say so instead of the hub's repo-id complaint.
        raise FacrError(name, "no such model folder")

    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, LlavaForConditionalGeneration

    from facr.verbalizer.backbones import quiet_loading

    kwargs: dict = {}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs.update(quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                             bnb_4bit_compute_dtype=torch.bfloat16),
                      device_map={"": target.index or 0})
    else:
        # Half-precision matmuls on a CPU are slow and partly unsupported: compute in float32 there.
        kwargs.update(dtype=torch.float32 if target.type == "cpu" else "auto", device_map=str(target))

    with quiet_loading():
        try:
            config = AutoConfig.from_pretrained(name)
        except (OSError, ValueError) as exc:
            model_type = _model_type(folder) if folder.is_dir() else None
            if model_type is not None and model_type.startswith("llava"):
                raise FacrError(name, f"model_type {model_type!r} is the original LLaVA repository's layout; "
                                      "convert it to the transformers layout first "
                                      "(transformers' convert_llava_weights_to_hf.py)") from None
            raise FacrError(name, f"cannot read the model config: {_first_line(exc)}") from None
        try:
            processor = AutoProcessor.from_pretrained(name)
        except (OSError, ValueError, TypeError) as exc:
            raise FacrError(name, f"cannot load the processor: {_first_line(exc)}") from None
        if getattr(processor, "image_processor", None) is None:
            raise FacrError(name, f"not an image-text model: its processor is a {type(processor).__name__} "
                                  "with no image processor")
        try:
            try:
                model = AutoModelForImageTextToText.from_pretrained(name, config=config, **kwargs)
            except ValueError as exc:
                # A LLaVA-family config the auto mapping does not list still loads as LLaVA.
                if "llava" not in str(getattr(config, "model_type", "")):
                    raise FacrError(name, f"not an image-text-to-text model (model_type "
                                          f"{getattr(config, 'model_type', None)!r}): {_first_line(exc)}") from None
                model = LlavaForConditionalGeneration.from_pretrained(name, **kwargs)
        except ImportError as exc:
            raise FacrError(name, f"cannot load the model (missing dependency): {_first_line(exc)}") from None
        except (OSError, ValueError) as exc:
            raise FacrError(name, f"cannot load the model: {_first_line(exc)}") from None
    return model.eval(), processor


def _prompt_text(processor, prompt: str) -> str:
    """The model's own conversation format for one image and ``prompt``, ending where the answer starts."""
    if getattr(processor, "chat_template", None):
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return LLAVA_PROMPT.format(prompt=prompt)


def ask_vlm(model, processor, images: Sequence, prompts: Sequence[str], *, max_new_tokens: int = 128) -> list[str]:
    """One greedy answer per (image, prompt) pair, generated as one left-padded batch; only the new
    tokens, decoded without special tokens and stripped."""
    import torch

    if len(images) != len(prompts):
        raise ValueError(f"images and prompts must pair up, got {len(images)} images and {len(prompts)} prompts")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not prompts:
        return []
    texts = [_prompt_text(processor, p) for p in prompts]
    tokenizer = getattr(processor, "tokenizer", processor)
    call: dict = {}
    bos = getattr(tokenizer, "bos_token", None)
    if bos and all(t.startswith(bos) for t in texts):
        # The template already wrote BOS; the tokenizer must not add a second one.
        call["add_special_tokens"] = False
    # A decoder-only model continues from the last column: pad on the left, so every row ends
    # with its own prompt and the new tokens start at the same index in each.
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        inputs = processor(text=texts, images=[[im] for im in images], padding=True, return_tensors="pt", **call)
    finally:
        tokenizer.padding_side = side
    dtype = model.dtype
    inputs = {k: (v.to(model.device, dtype=dtype) if torch.is_floating_point(v) else v.to(model.device))
              for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    generate: dict = {"do_sample": False, "num_beams": 1, "max_new_tokens": max_new_tokens}
    if getattr(model.generation_config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        generate["pad_token_id"] = tokenizer.pad_token_id
    with torch.inference_mode():
        out = model.generate(**inputs, **generate)
    if not getattr(model.config, "is_encoder_decoder", False):
        out = out[:, inputs["input_ids"].shape[1]:]
    return [t.strip() for t in processor.batch_decode(out, skip_special_tokens=True)]


def generate_vlm(model, processor, records: Iterable, root: str | os.PathLike | None, *,
                 tasks: Sequence[str] = ("au", "emotion"), batch_size: int = 8, max_new_tokens: int = 128,
                 progress: bool = False, source: str = "") -> list[dict]:
    """Generation rows (see :mod:`facr.external.generations`) for ``records``: one per face, in order.

    ``output`` answers :data:`PROMPTS` ``au`` and ``emotion_output`` answers ``emotion`` (each only
    when its task is in ``tasks``); ``emotion`` and ``aus`` copy the record's labels when it has
    them (``aus`` only when the record codes at least one AU); ``source`` names the model.
    Greedy decoding, ``batch_size`` faces per ``generate`` call.
    """
    tasks = tuple(tasks)
    if not tasks or any(t not in PROMPTS for t in tasks):
        raise ValueError(f"tasks must be a non-empty subset of {tuple(PROMPTS)}, got {tasks!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    from tqdm.auto import tqdm

    records = list(records)
    rows: list[dict] = []
    with tqdm(total=len(records), desc="generate", unit="face", disable=not progress) as bar:
        for start in range(0, len(records), batch_size):
            batch = records[start:start + batch_size]
            images = [image_of(r) for r in batch]
            answers = {t: ask_vlm(model, processor, images, [PROMPTS[t]] * len(batch), max_new_tokens=max_new_tokens)
                       for t in tasks}
            for i, record in enumerate(batch):
                said = {t: answers[t][i] if t in answers else None for t in PROMPTS}
                rows.append(generation_row(record_key(record, root), record, output=said["au"],
                                           emotion_output=said["emotion"], source=source))
            bar.update(len(batch))
    return rows
