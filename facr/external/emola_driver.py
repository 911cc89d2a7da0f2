"""facr's EmoLA driver: answer one question about every face of a FABA-style annotation list.

Run by ``facr emola generate --model emola`` (:mod:`facr.external.emola`) with the python of
EmoLA's own environment (torch 2.0.1, transformers 4.31, peft 0.4.0) and cwd = an EmoLA checkout
(github.com/JackYFL/EmoLA). It imports only the standard library, torch, numpy, PIL and the
checkout's ``emollava`` / ``llava`` packages: never facr.

It is EmoLA's ``eval_model()`` (``emollava/eval/eval_FABA.py``, lines 190-251) without the
scoring: ``load_pretrained_model(model_path, model_base, model_name, model_path)``, the
conversation template picked from the checkpoint's name (``llava_v1`` for EmoLA's), the question
after ``DEFAULT_IMAGE_TOKEN + '\\n'``, ``tokenizer_image_token``, ``image_processor.preprocess``
of the PIL RGB image (no padding, as EmoLA's eval), the 212-float landmark ``.npy`` as an fp16
tensor, and ``model.generate(input_ids, images=..., org_landmark_features=...)`` with the
``</s>`` stopping criterion. Differences, all deliberate:

* decoding is greedy (``do_sample=False``) so runs repeat; ``--sample`` uses EmoLA's
  ``top_p=0.5, temperature=0.01`` with ``torch.manual_seed(seed + index)`` per item;
* ``max_new_tokens`` defaults to 512 (EmoLA: 2048; its answers are a paragraph);
* ``model.eval()`` after loading: EmoLA's merged model is already in eval mode, but the unmerged
  LoRA layers of ``--load-in-4bit`` would otherwise keep their dropout on;
* ``--load-in-4bit`` (EmoLA's eval has no such flag, and its builder's 4-bit branch cannot load a
  LoRA checkpoint): the builder is called with ``load_4bit=False`` and, through its ``**kwargs``,
  a ``BitsAndBytesConfig`` equal to its own 4-bit one (NF4, double quantisation, fp16 compute)
  plus ``llm_int8_skip_modules=["mm_projector", "lm_head"]``. Without the skip, transformers
  quantises the multimodal projector and the builder's ``load_state_dict(non_lora_trainables)``
  fails with "size mismatch for model.mm_projector.0.weight ... torch.Size([2097152, 1])" (the
  same builder code in haotian-liu/LLaVA#433, #744, #1384). Then ``LoraModel.merge_and_unload``
  is replaced, in this process only, by one that returns the wrapped model with its LoRA layers
  still in place: peft 0.4.0 refuses to merge into a quantised model ("Cannot merge LORA layers
  when the model is loaded in 8-bit mode", ``peft/tuners/lora.py:438-440``), and an unmerged
  LoRA computes the same function (``W x + B A x * scaling``). The answers are those of a 4-bit
  base, close to but not the same as EmoLA's fp16 ones.

Output: one JSON line per item, ``{"index": <position in the list>, "image": <item's image>,
"item": <item's sha1, or its image when it has none>, "output": <answer>}``, appended and flushed
as each answer is made. Resume: items whose index already has a line with the same ``item`` are
skipped; a line cut short by a crash is dropped.

    python emola_driver.py --model-path CKPT --model-base LLAVA --ann-file eval_au_anno.json \\
        --data-dir DATA --question "What AUs are conveyed by this face?" --out au.jsonl
"""

import argparse
import json
import os
import sys
import time
import traceback

FOUR_BIT_SKIP_MODULES = ["mm_projector", "lm_head"]
SAMPLE_TOP_P = 0.5  # eval_FABA.py --top_p default
SAMPLE_TEMPERATURE = 0.01  # eval_FABA.py:234


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", default=".", help="the EmoLA checkout (put first on sys.path; default: cwd)")
    p.add_argument("--model-path", required=True, help="EmoLA LoRA checkpoint folder")
    p.add_argument("--model-base", default=None, help="LLaVA-1.5-7B folder ('None' = no base, as EmoLA)")
    p.add_argument("--ann-file", required=True, help="JSON list of {image, landmark, ...} items")
    p.add_argument("--data-dir", required=True, help="prefix of the items' image and landmark paths")
    p.add_argument("--question", required=True, help="the question asked about every face")
    p.add_argument("--out", required=True, help="JSONL of answers (appended; resumed)")
    p.add_argument("--conv-mode", default=None, help="override the template EmoLA picks from the model name")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--sample", action="store_true", help="EmoLA's sampling (top_p 0.5, temperature 0.01)")
    p.add_argument("--seed", type=int, default=0, help="with --sample: torch.manual_seed(seed + index)")
    p.add_argument("--load-in-4bit", action="store_true", help="NF4 base with unmerged LoRA (see module doc)")
    p.add_argument("--device", default="cuda", help="EmoLA's builder device (default cuda, as EmoLA)")
    return p.parse_args(argv)


def log(msg):
    print(f"[emola_driver] {msg}", file=sys.stderr, flush=True)


def identity(item):
    """What a line must match to count as this item's answer: facr's sha1 of the face and its
    landmarks, or the image path for lists without one (EmoLA's own)."""
    return item.get("sha1", item["image"])


def read_done(out_path, annos):
    """Indices already answered in ``out_path`` for these items; truncates a cut-short last line."""
    if not os.path.exists(out_path):
        return set()
    with open(out_path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            f.truncate(end)
    done = set()
    for raw in data[:end].splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        i = obj.get("index") if isinstance(obj, dict) else None
        if (isinstance(i, int) and 0 <= i < len(annos) and isinstance(obj.get("output"), str)
                and obj.get("item") == identity(annos[i])):
            done.add(i)
    return done


def conv_mode_for(model_name, override=None):
    """EmoLA's choice of template from the model name (eval_FABA.py:197-205)."""
    name = model_name.lower()
    if "llama-2" in name:
        mode = "llava_llama_2"
    elif "v1" in name:
        mode = "llava_v1"
    elif "mpt" in name:
        mode = "mpt"
    else:
        mode = "llava_v0"
    if override is not None and override != mode:
        log(f"the auto inferred conversation mode is {mode}, while --conv-mode is {override}, using {override}")
        return override
    return mode


def keep_lora_unmerged():
    """Make peft's ``merge_and_unload`` hand back the model with its LoRA layers unmerged."""
    from peft.tuners.lora import LoraModel

    def merge_and_unload(self, *args, **kwargs):
        return self.model

    merge_and_unload.facr_unmerged = True
    LoraModel.merge_and_unload = merge_and_unload


def load(args):
    import torch
    from emollava.model.builder import load_pretrained_model
    from llava.mm_utils import get_model_name_from_path
    from llava.utils import disable_torch_init

    disable_torch_init()
    model_base = None if args.model_base in (None, "None") else args.model_base
    model_name = get_model_name_from_path(args.model_path)
    kwargs = {}
    if args.device != "cuda":
        kwargs["device"] = args.device
    if args.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16, bnb_4bit_use_double_quant=True,
            bnb_4bit_quant_type="nf4", llm_int8_skip_modules=list(FOUR_BIT_SKIP_MODULES))
        keep_lora_unmerged()
    tokenizer, model, image_processor, _ = load_pretrained_model(
        args.model_path, model_base, model_name, args.model_path, **kwargs)
    model.eval()
    return tokenizer, model, image_processor, model_name


def answer(args, model, tokenizer, image_processor, conv_mode, image_path, landmark_path, index):
    """eval_FABA.py eval_model(), lines 190-251, with facr's decoding settings."""
    import numpy as np
    import torch
    from llava.constants import (
        DEFAULT_IM_END_TOKEN,
        DEFAULT_IM_START_TOKEN,
        DEFAULT_IMAGE_TOKEN,
        IMAGE_TOKEN_INDEX,
    )
    from llava.conversation import SeparatorStyle, conv_templates
    from llava.mm_utils import KeywordsStoppingCriteria, tokenizer_image_token
    from PIL import Image

    qs = args.question
    if getattr(model.config, "mm_use_im_start_end", False):
        qs = DEFAULT_IM_START_TOKEN + DEFAULT_IMAGE_TOKEN + DEFAULT_IM_END_TOKEN + "\n" + qs
    else:
        qs = DEFAULT_IMAGE_TOKEN + "\n" + qs
    conv = conv_templates[conv_mode].copy()
    conv.append_message(conv.roles[0], qs)
    conv.append_message(conv.roles[1], None)
    prompt = conv.get_prompt()

    image = Image.open(image_path).convert("RGB")
    image_tensor = image_processor.preprocess(image, return_tensors="pt")["pixel_values"].half().to(args.device)
    landmark = torch.tensor(np.load(landmark_path)).half().to(args.device)
    input_ids = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt").unsqueeze(0)
    input_ids = input_ids.to(args.device)

    stop_str = conv.sep if conv.sep_style != SeparatorStyle.TWO else conv.sep2
    stopping_criteria = KeywordsStoppingCriteria([stop_str], tokenizer, input_ids)
    decoding = {"do_sample": False}
    if args.sample:
        torch.manual_seed(args.seed + index)
        decoding = {"do_sample": True, "top_p": SAMPLE_TOP_P, "temperature": SAMPLE_TEMPERATURE}
    with torch.inference_mode():
        output_ids = model.generate(
            input_ids,
            images=image_tensor,
            max_new_tokens=args.max_new_tokens,
            use_cache=True,
            stopping_criteria=[stopping_criteria],
            org_landmark_features=landmark,
            **decoding)

    n = input_ids.shape[1]
    n_diff = (input_ids != output_ids[:, :n]).sum().item()
    if n_diff > 0:
        log(f"warning: {n_diff} output_ids are not the same as the input_ids")
    outputs = tokenizer.batch_decode(output_ids[:, n:], skip_special_tokens=True)[0].strip()
    outputs = outputs.removesuffix(stop_str)
    return outputs.strip()


def run(args):
    # Python put this script's folder (facr/external) first on sys.path; EmoLA must not see it.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.path.insert(0, os.path.abspath(args.repo))  # eval_FABA.py: sys.path.append('./') from the checkout
    with open(args.ann_file, encoding="utf-8") as f:
        annos = json.load(f)
    if not isinstance(annos, list):
        raise TypeError(f"{args.ann_file}: expected a JSON list of items")
    for i, item in enumerate(annos):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("image", "landmark")):
            raise ValueError(f"{args.ann_file}: item {i} needs string 'image' and 'landmark'")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    done = read_done(args.out, annos)
    todo = [i for i in range(len(annos)) if i not in done]
    log(f"{len(done)} of {len(annos)} items already answered in {args.out}; {len(todo)} to go")
    if not todo:
        return
    tokenizer, model, image_processor, model_name = load(args)
    conv_mode = conv_mode_for(model_name, args.conv_mode)
    log(f"model {model_name}, conversation template {conv_mode}")
    with open(args.out, "a", encoding="utf-8") as out:
        for n, i in enumerate(todo, 1):
            item = annos[i]
            t0 = time.time()
            text = answer(args, model, tokenizer, image_processor, conv_mode,
                          os.path.join(args.data_dir, item["image"]),
                          os.path.join(args.data_dir, item["landmark"]), i)
            line = {"index": i, "image": item["image"], "item": identity(item), "output": text}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
            log(f"{n}/{len(todo)} item {i} ({item['image']}): {len(text)} chars in {time.time() - t0:.1f}s")


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except Exception as exc:  # noqa: BLE001 -- the parent reads the last line of this log
        traceback.print_exc()
        message = " ".join(str(exc).split()) or "(no message)"
        print(f"emola_driver: error: {type(exc).__name__}: {message}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
