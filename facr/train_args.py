"""The flags shared by ``facr train reasoner`` and ``recipes/train_reasoner.py``, and the ``main`` of the
training recipes.

Each flag sets one field of :class:`facr.train.TrainConfig` (:data:`OVERRIDES`); its type and the
default its help shows are read from that field (:mod:`facr.flags`), and a flag left out keeps the
``--config`` file's value, else the dataclass default. Building these flags imports ``facr.train``
(torch): ``facr`` builds them only for ``facr train reasoner``.
"""

from facr.flags import add_fields, given

OVERRIDES = {
    # flag: (the TrainConfig field it sets, dotted; help). Its type and default are the field's (facr.flags).
    "--data": ("data.path", "dataset folder (overrides data.path)"),
    "--format": ("data.format", "dataset format (default: recognised from the folder)"),
    "--out": ("out", "run folder"),
    "--seed": ("seed", "random seed"),
    "--faith": ("faith", "'on' (FACR) or 'off' (the no-faith control: λs = λi = 0)"),
    "--graph": ("graph", "graph file, emfacs, pspi, truth, induced, induced-ovr or permuted"),
    "--graph-base": ("graph_base", "what --graph permuted corrupts (default: induced)"),
    "--epochs": ("epochs", "epochs"),
    "--max-steps": ("max_steps", "stop after this many optimizer steps"),
    "--batch-size": ("batch_size", "batch size per process"),
    "--lr": ("lr", "learning rate"),
    "--lr-schedule": ("lr_schedule", "constant, or cosine (decays to 0 at the last step)"),
    "--lambda-i": ("loss.lambda_i", "invariance weight λi"),
    "--lambda-s": ("loss.lambda_s", "sensitivity weight λs"),
    "--loso-subject": ("data.loso_subject", "hold this subject out as the test set"),
    "--stride": ("data.stride", "keep every k-th training frame"),
    "--head": ("head", "emotion head: mlp, linear, graph (one MLP per class over its parents in G) or agcm "
                       "(AGCM's attention-guided concept head)"),
    "--au-readout": ("au_readout", "how z reads the encoder: pool, or attention (a spatial map per AU)"),
    "--circumplex-ot": ("loss.circumplex_ot", "weight of the circumplex optimal-transport term (0 = off)"),
    "--ot-cost": ("loss.ot_cost", "ground cost of that term: circumplex, or uniform (the control)"),
    "--au-balance": ("loss.au_balance", "AU BCE positive weight (neg/pos)^x per AU (0 = plain BCE)"),
    "--au-intensity": ("loss.au_intensity", "weight of the AU intensity terms on z's logits (data with 0-5 "
                       "intensities; 0 = off)"),
    "--presence-plateau": ("loss.presence_plateau", "weight of the head's plateau: the class logit stays when a "
                           "present parent's z sinks by up to loss.plateau_width (0 = off)"),
    "--detach-z": ("loss.detach_z", "the class terms train the head only; z learns from the AU labels alone"),
    "--au-pair-share": ("grounding.au_pair_share", "each other active AU of an AU pair's face removed too "
                        "with this probability"),
    "--background": ("grounding.background", "share of training images whose pixels outside the face "
                     "are randomised (0 = off)"),
    "--au-pairs": ("grounding.au_pairs", "per batch, images re-rendered with an active AU removed "
                   "(synthetic benchmark; 0 = off)"),
    "--nuisance-pairs": ("grounding.nuisance_pairs", "per batch, images re-rendered with a nuisance changed "
                         "(synthetic benchmark; 0 = off)"),
    "--occlusion-pairs": ("grounding.occlusion_pairs", "per batch, images with an active AU's region "
                          "inpainted (0 = off)"),
    "--decorrelate": ("grounding.decorrelate", "share of training faces redrawn once with AUs drawn independently, "
                      "to train z only (synthetic benchmark; 0 = off)"),
    "--arch": ("encoder.arch", "encoder: resnet-18, resnet-34, resnet-50, vit-tiny, vit-small"),
    "--pretrained": ("encoder.pretrained", "encoder weights: a local folder or hub id (e.g. microsoft/resnet-18)"),
    "--mixed-precision": ("mixed_precision", "no, fp16 or bf16"),
    "--num-workers": ("data.num_workers", "DataLoader workers"),
    "--max-bad-images": ("data.max_bad_images", "share of the images read that may be skipped as missing, "
                         "not decodable or outside the data root before training stops"),
}


def add_train_arguments(parser) -> None:
    """The flags shared by ``facr train reasoner`` and ``recipes/train_reasoner.py``."""
    from facr.train import TrainConfig

    parser.add_argument("--config", help="YAML config (fields of facr.train.TrainConfig)")
    add_fields(parser, TrainConfig, [key for key, _ in OVERRIDES.values()], extra=_flags())
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its state/")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the earlier run in --out (a run folder holds one run)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _flags() -> dict[str, dict]:
    """Per TrainConfig field, the flag that sets it and that flag's help (facr.flags' ``extra``)."""
    return {key: {"flag": flag, "help": help_text} for flag, (key, help_text) in OVERRIDES.items()}


def overrides_from_args(args) -> dict:
    """``{"data.path": ..., ...}`` from the parsed override flags: those given only."""
    from facr.train import TrainConfig

    return given(args, TrainConfig, [key for key, _ in OVERRIDES.values()], extra=_flags())


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


def run_from_args(args):
    """Train (or resume) as the parsed flags say; returns the run result (:class:`facr.train.RunResult`).

    ``--resume`` continues the run in the folder given (``--out``, else the config's ``out``) with the
    settings saved there, except ``out``: a copied or moved run resumes where it is now, never in the
    folder it was copied from."""
    from pathlib import Path

    from facr.config import from_dict
    from facr.errors import FacrError
    from facr.train import TrainConfig, load_train_config, train
    from facr.utils import loads_json

    cfg = load_train_config(args.config, overrides_from_args(args))
    if args.resume:
        saved = Path(cfg.out) / "config.json"
        if saved.exists():
            try:
                raw = loads_json(saved.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise FacrError(saved, "cannot resume from it: not readable JSON "
                                       f"({str(exc).splitlines()[0]})") from None
            if not isinstance(raw, dict):
                raise FacrError(saved, "cannot resume from it: not a JSON object")
            cfg = from_dict(TrainConfig, {**raw, "out": cfg.out}, str(saved))
    return train(cfg, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
