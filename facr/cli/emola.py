"""``facr emola``: EmoLA-format generations — ask faces EmoLA's questions (EmoLA itself, or a local
image-text-to-text model), or write the labelled stand-in; ``facr audit --model emola`` scores them."""

from __future__ import annotations

from pathlib import Path

from facr.cli.base import Command, Group, add_json, add_no_progress, add_out_file, example, out_file, print_json
from facr.errors import FacrError


def _generation_records(args):
    from facr.audit.auditors import AuditRequest, load_audit_records

    try:
        request = AuditRequest(model="emola", data=args.data, format=args.format, split=args.split, limit=args.limit)
    except ValueError as exc:
        raise FacrError(args.data, str(exc)) from None
    records = load_audit_records(request)
    if not records:
        raise FacrError(args.data, "no record selected")
    return records


def _write_generations(rows: list[dict], out: str, as_json: bool, extra: dict) -> int:
    from facr.audit.external import read_named
    from facr.external.generations import write_generations

    n = write_generations(out, rows)
    none = sum(not read_named(r.get("output")) for r in rows)
    summary = {"out": str(out), "n_lines": n, "n_no_au_named": none, **extra}
    if as_json:
        print_json(summary)
    else:
        print(f"wrote {n} generations to {out} ({none} name no AU)")
        for r in rows[:2]:
            print(f"  {r['image']}: \"{(r.get('output') or '')[:100]}\"")
    return 0


def _add_generation_io(p) -> None:
    """The faces a generations command reads (``_generation_records``) and the file it writes."""
    from facr.data.formats import FORMATS

    p.add_argument("--data", required=True, help="dataset folder (faces)")
    p.add_argument("--format", choices=FORMATS, default=None, help="dataset format (default: recognised)")
    p.add_argument("--split", default="test", help="which split (default test; 'all' for every record)")
    p.add_argument("--limit", type=int, default=None, help="the first N faces of the split")
    add_out_file(p, "the generations JSONL to write")


def cmd_emola_generate(args) -> int:
    _check_generate_flags(args)  # the flags first, then --out: all before hours of generation
    out_file(args, args.data, args.vlm, args.model_path, args.emotion_model_path, args.model_base)
    tasks = ("au", "emotion") if args.task == "both" else (args.task,)
    rows = _vlm_rows(args, tasks) if args.model == "hf-vlm" else _emola_rows(args, tasks)
    return _write_generations(rows, args.out, args.json, {"model": args.model, "tasks": list(tasks)})


def _check_generate_flags(args) -> None:
    """What each ``--model`` needs, one line naming the flag that is missing or does not apply."""
    if args.model == "hf-vlm":
        if not args.vlm:
            raise FacrError("--vlm", "--model hf-vlm needs --vlm PATH (a local image-text-to-text model folder)")
        return
    if args.pixel_cf:
        raise FacrError("--pixel-cf", "occluded answers are asked of --model hf-vlm only (EmoLA's driver runs in "
                                      "its own environment and reads image files)")
    missing = [f for f, v in (("--emola-repo", args.emola_repo), ("--model-path", args.model_path),
                              ("--model-base", args.model_base)) if not v]
    if missing:
        raise FacrError("emola", f"--model emola needs {', '.join(missing)} (see docs/other-reasoners.md: EmoLA)")
    if args.task == "emotion" and not args.emotion_model_path:
        raise FacrError("--emotion-model-path", "--task emotion needs EmoLA's emotion checkpoint")


def _vlm_rows(args, tasks: tuple[str, ...]) -> list[dict]:
    """``--model hf-vlm``: a local image-text-to-text model answers (and, with --pixel-cf, answers again on
    occluded faces)."""
    from facr.external.vlm import ask_vlm, generate_vlm, load_vlm

    records = _generation_records(args)
    model, processor = load_vlm(args.vlm, load_in_4bit=args.load_in_4bit)
    progress = not (args.json or args.no_progress)
    rows = generate_vlm(model, processor, records, args.data, tasks=tasks, batch_size=args.batch_size,
                        max_new_tokens=args.max_new_tokens, progress=progress, source=f"hf-vlm {args.vlm}")
    if args.pixel_cf:
        from facr.audit.pixel import occlusion_answers

        def ask(images, prompts):
            return ask_vlm(model, processor, images, prompts, max_new_tokens=args.max_new_tokens)

        occlusion_answers(ask, records, rows, tasks=tasks, batch_size=args.batch_size, progress=progress)
    return rows


def _emola_rows(args, tasks: tuple[str, ...]) -> list[dict]:
    """``--model emola``: your EmoLA checkout answers, in its own python environment."""
    from facr.external.emola import generate_emola

    records = _generation_records(args)
    return generate_emola(args.emola_repo, args.model_path, args.model_base, records, args.data,
                          emotion_model_path=args.emotion_model_path if "emotion" in tasks else None,
                          python=args.emola_python, load_in_4bit=args.load_in_4bit,
                          workdir=args.workdir or f"{args.out}.emola", max_new_tokens=args.max_new_tokens,
                          sample=args.sample, device=args.device, progress=not (args.json or args.no_progress),
                          source=f"EmoLA {Path(args.model_path).name}")


def cmd_emola_standin(args) -> int:
    from facr.external.standin import standin_generations

    out_file(args, args.data)
    records = _generation_records(args)
    classes = args.classes or sorted({r.emotion for r in records if r.emotion})
    if not classes:
        raise FacrError(args.data, "no labelled emotion in the selected records: pass --classes")
    rows = standin_generations(records, args.data, classes=classes, seed=args.seed, p_correct=args.p_correct,
                               p_prototype=args.p_prototype, p_seen=args.p_seen)
    return _write_generations(rows, args.out, args.json, {"model": "stand-in", "classes": classes})


def _generate_arguments(p) -> None:
    p.add_argument("--model", choices=("emola", "hf-vlm"), required=True, help="what answers")
    _add_generation_io(p)
    p.add_argument("--task", choices=("au", "emotion", "both"), default="both", help="which questions (default both)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens per answer (default 256)")
    p.add_argument("--load-in-4bit", action="store_true", help="4-bit NF4 weights (bitsandbytes, CUDA GPU)")
    add_json(p)
    add_no_progress(p)
    v = p.add_argument_group("--model hf-vlm")
    v.add_argument("--vlm", default=None, help="a local image-text-to-text model folder (or a cached hub id)")
    v.add_argument("--batch-size", type=int, default=8, help="faces per generate call (default 8)")
    v.add_argument("--pixel-cf", action="store_true",
                   help="also ask again on the face with each named or labelled-active AU's region occluded "
                        "(inpainted): the lines carry \"occlusions\", which facr audit --model emola scores")
    g = p.add_argument_group("--model emola")
    g.add_argument("--emola-repo", default=None, help="your EmoLA checkout (github.com/JackYFL/EmoLA)")
    g.add_argument("--model-path", default=None, help="EmoLA's AU checkpoint (llava-v1.5-7b-lora-emola-au)")
    g.add_argument("--emotion-model-path", default=None, help="EmoLA's emotion checkpoint (for the emotion question)")
    g.add_argument("--model-base", default=None, help="the LLaVA-1.5-7B base folder")
    g.add_argument("--emola-python", default="python", help="the python of EmoLA's environment (default: python)")
    g.add_argument("--workdir", default=None,
                   help="EmoLA's inputs, answers and logs (default: OUT.emola/; a rerun resumes from it)")
    g.add_argument("--sample", action="store_true",
                   help="EmoLA's own sampling (top_p 0.5, temperature 0.01) instead of greedy decoding")
    g.add_argument("--device", default="cuda", help="the device EmoLA runs on (default cuda; EmoLA is fp16 on CUDA)")


def _standin_arguments(p) -> None:
    _add_generation_io(p)
    p.add_argument("--classes", nargs="+", default=None,
                   help="emotions a wrong answer is drawn from (default: the labelled ones)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--p-correct", type=float, default=0.7, help="probability of stating the labelled emotion (0.7)")
    p.add_argument("--p-prototype", type=float, default=0.8, help="probability of naming each prototype AU (0.8)")
    p.add_argument("--p-seen", type=float, default=0.4, help="probability of naming each AU labelled present (0.4)")
    add_json(p)


GENERATE_EXAMPLES = (
    "examples:\n  facr emola generate --model hf-vlm --vlm /models/llava-1.5-7b-hf --data /data/FABA --split test "
    "--out runs/llava.jsonl\n"
    "  facr emola generate --model emola --emola-repo ~/EmoLA --model-path ~/EmoLA/saved_checkpoints/"
    "llava-v1.5-7b-lora-emola-au \\\n      --emotion-model-path ~/EmoLA/saved_checkpoints/"
    "llava-v1.5-7b-lora-emola-emotion --model-base ~/EmoLA/checkpoints/llava-v1.5-7b \\\n"
    "      --emola-python ~/miniconda3/envs/emola/bin/python --data /data/FABA --out runs/emola.jsonl")

GROUP = Group("emola", "EmoLA-format generations: run EmoLA or a local VLM, or write the stand-in", commands=(
    Command("generate", "ask faces EmoLA's questions (EmoLA itself, or a local image-text-to-text model) -> JSONL",
            _generate_arguments, cmd_emola_generate,
            description="Ask every selected face EmoLA's two questions (\"What AUs are conveyed by this face?\", "
                        "\"What emotions are conveyed by this face?\") and write one JSON line per face "
                        "(image, output, emotion_output, labels), the input of facr audit --model emola. "
                        "--model emola runs your EmoLA checkout and weights with EmoLA's own inputs (FABA-style "
                        "JSON, 2d106det landmark features) in EmoLA's python environment, on a GPU; --model hf-vlm "
                        "runs any local transformers image-text-to-text model folder (a LLaVA, ...).",
            epilog=GENERATE_EXAMPLES),
    Command("stand-in", "an EmoLA-format generations file that is NOT EmoLA: a labelled stereotype describer",
            _standin_arguments, cmd_emola_standin,
            description="Write an EmoLA-format generations file from the labels, for running the EmoLA comparison "
                        "where EmoLA cannot run (no GPU, the synthetic benchmark). It is NOT EmoLA's output and every "
                        "line says so: it states the labelled emotion with probability --p-correct (else another), "
                        "and names the EMFACS prototype AUs of the stated emotion (each with --p-prototype) plus AUs "
                        "labelled present (each with --p-seen), in EmoLA's spellings. Its figures come from these "
                        "settings.",
            epilog=example("facr emola stand-in --data demo-out/synth --split all --out runs/standin.jsonl")),
))
