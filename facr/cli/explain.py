"""``facr explain``: ``facr explain INPUT`` (photos, folders, video, a webcam or AU tables; see
:mod:`facr.explain.run`) and ``facr explain maps`` (region maps of the AUs a reasoner invokes)."""

from __future__ import annotations

from facr.cli.base import Command, Group, add_json, add_out_file, example, out_file, print_json
from facr.errors import FacrError

EXPLAIN_INPUT = "input"  # the verb `facr explain INPUT` runs; it is never typed (see _route_explain)
EXPLAIN_VERBS = ("maps",)


def _route_explain(argv: list[str]) -> list[str]:
    """``facr explain maps ...`` is the maps verb; ``facr explain`` followed by anything else (a file, a
    flag, nothing) is ``facr explain input ...``: INPUT needs no verb, and a file named maps is ./maps."""
    if argv[:1] == ["explain"] and (len(argv) < 2 or argv[1] not in EXPLAIN_VERBS):
        return ["explain", EXPLAIN_INPUT, *argv[1:]]
    return argv


def cmd_explain_maps(args) -> int:
    from facr.audit.auditors import reasoner_folder
    from facr.chat.face import prepare_face
    from facr.explain import maps as M
    from facr.explain.overlay import explain_face, render
    from facr.graph import resolve_graph
    from facr.models.reasoner import load_reasoner
    from facr.utils import atomic_path

    out_file(args, args.model, args.image, args.graph)
    folder = reasoner_folder(args.model)
    if folder is None:
        raise FacrError(args.model,
                        "not a facr reasoner checkpoint (no model.safetensors + graph.json here or in model/)")
    model, graph = load_reasoner(folder)
    if args.method is not None:
        problem = M.available(model, args.method)
        if problem:
            raise FacrError(args.model, problem)
    if args.graph:
        graph = resolve_graph(args.graph)
    face = prepare_face(args.image, model.config.encoder.image_size, detect=not args.crop)
    fm = explain_face(model, graph, face.pixels, args.method, args.au)
    png = render(fm)
    with atomic_path(args.out) as tmp:
        tmp.write_bytes(png)
    summary = {**fm.summary(), "image": str(args.image), "face": face.note, "out": str(args.out), "graph": graph.name}
    if args.json:
        print_json(summary)
        return 0
    print(f"{args.image}: {face.note}")
    print(f"predicted {fm.predicted} (p {fm.probability:.2f}); maps ({fm.method}) of "
          + (", ".join(fm.aus) if fm.aus else "no AU") + f" -> {args.out}")
    for a, info in summary["aus"].items():
        print(f"  {a:<5} {info['name']:<22} z {info['z']:.2f}  Δ {info['delta']:+.2f}  peak at "
              f"{100 * info['peak'][0]:.0f}% down, {100 * info['peak'][1]:.0f}% across")
    return 0


def cmd_explain_input(args) -> int:
    from facr.explain.run import run_command

    return run_command(args)


def _input_arguments(p) -> None:
    from facr.explain import run

    p.description, p.epilog = run.DESCRIPTION, run.EPILOG
    run.add_arguments(p)


def _maps_arguments(p) -> None:
    from facr.audit.options import MAP_METHOD_NAMES  # facr.explain.maps.METHODS, without torch

    p.add_argument("--model", required=True, help="a reasoner checkpoint or run folder")
    p.add_argument("--image", required=True, help="a picture with a face (or a face crop with --crop)")
    add_out_file(p, "the overlay PNG to write")
    p.add_argument("--method", choices=MAP_METHOD_NAMES, default=None,
                   help="map method (default: agcm for an agcm head, attention for an attention readout, rollout "
                        "for a ViT, else gradcam)")
    p.add_argument("--au", action="append", default=None, help="show this AU (repeatable; default: the invoked AUs)")
    p.add_argument("--graph", default=None, help="the graph whose Pa(c) sizes the invoked set (default: the model's)")
    p.add_argument("--crop", action="store_true", help="the picture is already a face crop: no detection")
    add_json(p)


GROUP = Group(
    "explain", "explain emotions on photos, folders, video, a webcam or AU tables (facr explain INPUT); "
               "facr explain maps", metavar="{INPUT,maps}", commands=(
        Command(EXPLAIN_INPUT, "", _input_arguments, cmd_explain_input, prog="facr explain"),
        Command("maps", "one overlay per invoked AU on a face (Grad-CAM, CE-FAM, rollout, AGCM attention)",
                _maps_arguments, cmd_explain_maps,
                description="Read a face with a reasoner and draw, for each AU it invokes for its prediction (the "
                            "top-|Pa(c)| by |do(z_k=0) effect|) or for the AUs you name, where on the face that AU "
                            "unit looks: gradcam (ResNet last stage), cefam (CE-FAM: gradient-fused activation maps, "
                            "the layer chosen by channel masking), rollout (ViT, gradient-weighted attention "
                            "rollout), agcm (a head: agcm model's own concept attention).",
                epilog=example("facr explain maps --model demo-out/experiment/cells/facr/seed0/fixed --image "
                               "face.jpg --out overlay.png",
                               "facr explain maps --model runs/agcm --image crop.png --crop --method agcm --au AU12 "
                               "--au AU6 --out au12.png --json")),
    ))
