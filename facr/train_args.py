"""The flags shared by ``facr train reasoner`` and ``recipes/train_reasoner.py``.

Kept apart from ``facr.train`` so that building the CLI parser does not import torch.
"""

OVERRIDES = {
    # flag: (config key, type, help)
    "--data": ("data.path", str, "dataset folder (overrides data.path)"),
    "--format": ("data.format", str, "dataset format (default: recognised from the folder)"),
    "--out": ("out", str, "run folder"),
    "--seed": ("seed", int, "random seed"),
    "--faith": ("faith", str, "'on' (FACR) or 'off' (the no-faith control: λs = λi = 0)"),
    "--graph": ("graph", str, "graph file, emfacs, pspi, truth, induced or permuted"),
    "--graph-base": ("graph_base", str, "what --graph permuted corrupts (default: induced)"),
    "--epochs": ("epochs", int, "epochs"),
    "--max-steps": ("max_steps", int, "stop after this many optimizer steps"),
    "--batch-size": ("batch_size", int, "batch size per process"),
    "--lr": ("lr", float, "learning rate"),
    "--lr-schedule": ("lr_schedule", str, "constant, or cosine (decays to 0 at the last step)"),
    "--lambda-i": ("loss.lambda_i", float, "invariance weight λi"),
    "--lambda-s": ("loss.lambda_s", float, "sensitivity weight λs"),
    "--loso-subject": ("data.loso_subject", str, "hold this subject out as the test set"),
    "--stride": ("data.stride", int, "keep every k-th training frame"),
    "--head": ("head", str, "emotion head: mlp, linear or agcm (AGCM's attention-guided concept head)"),
    "--circumplex-ot": ("loss.circumplex_ot", float, "weight of the circumplex optimal-transport term (0 = off)"),
    "--ot-cost": ("loss.ot_cost", str, "ground cost of that term: circumplex, or uniform (the control)"),
    "--au-balance": ("loss.au_balance", float, "AU BCE positive weight (neg/pos)^x per AU (0 = plain BCE)"),
    "--background": ("grounding.background", float, "share of training images whose pixels outside the face "
                     "are randomised (0 = off)"),
    "--au-pairs": ("grounding.au_pairs", int, "per batch, images re-rendered with an active AU removed "
                   "(synthetic benchmark; 0 = off)"),
    "--nuisance-pairs": ("grounding.nuisance_pairs", int, "per batch, images re-rendered with a nuisance changed "
                         "(synthetic benchmark; 0 = off)"),
    "--occlusion-pairs": ("grounding.occlusion_pairs", int, "per batch, images with an active AU's region "
                          "inpainted (0 = off)"),
    "--arch": ("encoder.arch", str, "encoder: resnet-18, resnet-34, resnet-50, vit-tiny, vit-small"),
    "--pretrained": ("encoder.pretrained", str, "encoder weights: a local folder or hub id (e.g. microsoft/resnet-18)"),
    "--mixed-precision": ("mixed_precision", str, "no, fp16 or bf16"),
    "--num-workers": ("data.num_workers", int, "DataLoader workers"),
    "--max-bad-images": ("data.max_bad_images", float, "share of the images read that may be skipped as missing, "
                         "not decodable or outside the data root before training stops (default 0.05)"),
}


def add_train_arguments(parser) -> None:
    """The flags shared by ``facr train reasoner`` and ``recipes/train_reasoner.py``."""
    parser.add_argument("--config", help="YAML config (fields of facr.train.TrainConfig)")
    for flag, (_, typ, help_text) in OVERRIDES.items():
        parser.add_argument(flag, type=typ, default=None, help=help_text)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its state/")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the earlier run in --out (a run folder holds one run)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def overrides_from_args(args) -> dict:
    """``{"data.path": ..., ...}`` from the parsed override flags (unset flags are None)."""
    return {key: getattr(args, flag[2:].replace("-", "_")) for flag, (key, _, _) in OVERRIDES.items()}


def recipe_main(doc: str, add_arguments, run, argv=None) -> int:
    """The ``main`` of a training recipe (``recipes/*.py``, run by ``accelerate launch`` or python):
    parse the flags ``add_arguments`` adds, ``run(args)`` → a metrics dict (empty on ranks other than
    the main one), print it as JSON; a user error is one line on stderr and exit 2."""
    import argparse
    import json
    import sys

    from facr.errors import FacrError

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        metrics = run(args)
    except FacrError as exc:
        print(f"facr: {exc}", file=sys.stderr)
        return 2
    if metrics:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0
