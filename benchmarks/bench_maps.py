"""Region maps and the neighbouring methods on the demo benchmark, in one table.

Reads the cells of ``facr experiment run audits/synth_neighbours.yaml`` (FACR, faith-off, AGCM with
and without the faithfulness objective, the circumplex OT term and its uniform control), takes each
cell's audited figures (test split, own graph) and scores every map method that applies to its model
on the first ``--faces`` test faces against the benchmark's AU masks (``facr.explain.audit``), with the
random-map baseline; CE-FAM's contributions are compared with do() effects. Also draws the overlay grid
for the docs (``docs/maps-grid.png``): benchmark faces, the AU's true region, and each method's map.

    python benchmarks/bench_maps.py --exp runs/experiments/synth_neighbours --data demo-out/synth

Floor (the docs' reading of this table: "every map method localises above chance"): in every arm,
every map method's NRA is above the random map's; the script exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_section, check_floor, run, table_cell  # noqa: E402

ARMS = ("FACR", "faith-off", "AGCM+FACR", "AGCM", "FACR+OT-circumplex", "FACR+OT-uniform")


def slug(name: str) -> str:
    from facr.audit.experiment import slug as _slug

    return _slug(name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", default="runs/experiments/synth_neighbours")
    p.add_argument("--data", default="demo-out/synth")
    p.add_argument("--faces", type=int, default=200, help="test faces scored per model (default 200)")
    p.add_argument("--grid", default="docs/maps-grid.png")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()

    import torch

    from facr.data import formats
    from facr.data.torch_data import FaceTorchDataset, Task
    from facr.explain.audit import maps_audit
    from facr.models.reasoner import load_reasoner

    torch.manual_seed(0)
    records = [r for r in formats.load("synth", args.data).records if r.split == "test"]
    sub = records[: args.faces]
    rows, maps_of = [], {}
    for arm in ARMS:
        cell = Path(args.exp) / "cells" / slug(arm) / "seed0" / "fixed"
        audit = json.loads((cell / "audit.json").read_text())
        model, _ = load_reasoner(cell / "model")
        ds = FaceTorchDataset(sub, model.config.aus, Task("emotion", list(model.config.classes)),
                              model.config.encoder.image_size)
        m = maps_audit(model, ds, progress=True)
        maps_of[arm] = (model, m)
        meth = m["methods"]

        def get(name, key, meth=meth):  # bound per arm (a bare lambda would see the last arm's figures)
            return meth[name][key] if name in meth else None

        rows.append((arm, audit, m, get))
        print(arm, {k: round(v["nra"], 3) for k, v in meth.items()}, file=sys.stderr)

    head = ("| arm | head | loss | accuracy | macro-F1 | CF sens. | CF inv. | agreement (own G) "
            "| affective error dist. | NRA Grad-CAM | NRA CE-FAM | NRA AGCM | NRA random | hit rate (best) "
            "| CE-FAM vs do() ρ |")
    lines = [head, "|" + "---|" * 15]
    for arm, a, m, get in rows:
        cfg = json.loads((Path(args.exp) / "cells" / slug(arm) / "seed0" / "fixed" / "config.json").read_text())
        loss = "faith off" if cfg["faith"] == "off" else "FACR"
        if cfg["loss"]["circumplex_ot"] > 0:
            loss += f" + OT ({cfg['loss']['ot_cost']})"
        best = max((v for k, v in m["methods"].items() if k != "random"), key=lambda v: v["nra"] or -1)
        agree = (m.get("contribution_agreement") or {}).get("mean_rho_mean_vectors")
        figures = (a["accuracy"], a["macro_f1"], a["cf_sensitivity"], a["cf_invariance"], a["graph_causal_agreement"],
                   a.get("affective_error_distance"), get("gradcam", "nra"), get("cefam", "nra"), get("agcm", "nra"),
                   get("random", "nra"), best["hit_rate"], agree)
        lines.append(f"| {arm} | {cfg['head']} | {loss} | " + " | ".join(map(table_cell, figures)) + " |")
    table = "\n".join(lines)
    detail = ["", "| arm | method | NRA [95% CI] | EPG | hit rate | AU instances |", "|---|---|---|---|---|---|"]
    for arm, _, m, _ in rows:
        for name, sc in m["methods"].items():
            ci = sc.get("nra_ci95")
            ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
            detail.append(f"| {arm} | {name} | {table_cell(sc['nra'])}{ci_s} | {table_cell(sc['epg'])} | "
                          f"{table_cell(sc['hit_rate'])} | {sc['n']} |")
    corr = ["", "CE-FAM channel-masking contributions vs do(z_k=0) effects, Spearman ρ over the AUs per class "
                "(class-mean vectors / mean over faces), FACR:", "",
            "| class | n | ρ (class means) | ρ (per face) | top CE-FAM AU | top do() AU |",
            "|---|---|---|---|---|---|"]
    for cls, v in maps_of["FACR"][1]["contribution_agreement"]["per_class"].items():
        corr.append(f"| {cls} | {v['n']} | {table_cell(v['rho_mean_vectors'])} | {table_cell(v['rho_per_face'])} | "
                    f"{v['top_contribution']} | {v['top_do_effect']} |")
    out = table + "\n" + "\n".join(detail) + "\n" + "\n".join(corr)
    print(out)
    draw_grid(maps_of, records, args.grid)
    if not args.no_append:
        append_section(f"Region maps and the neighbouring methods ({args.faces} test faces of {args.data})", out,
                       f"Accuracy … affective distance: each cell's audit (all {len(records)} test faces, own graph). "
                       f"Maps: instances are the AUs each face shows, scored against the benchmark's masks. "
                       f"Overlay grid: {args.grid}.")
    # the floor: each method's NRA minus the random map's, the smallest over every arm and method
    # (a method or a random map with nothing scored has no margin: the floor is not met)
    margins = [sc["nra"] - chance if None not in (sc["nra"], chance) else float("-inf") for _, _, m, _ in rows
               for chance in [(m["methods"].get("random") or {}).get("nra")]
               for name, sc in m["methods"].items() if name != "random"]
    return check_floor("smallest NRA margin of a map method over the random map, over every arm",
                       min(margins, default=None), 1e-9)


def draw_grid(maps_of: dict, records, path: str, n_faces: int = 4) -> None:
    """Rows: benchmark faces; columns: the face, the true region of its strongest shown AU, and the maps
    of Grad-CAM and CE-FAM (FACR) and of AGCM's attention (AGCM+FACR) for that AU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from facr.data.torch_data import load_image
    from facr.explain import maps as M
    from facr.explain.overlay import blend
    from facr.explain.truth import drawn, region_masks
    from facr.utils import atomic_path

    facr_model, _ = maps_of["FACR"]
    agcm_model, _ = maps_of["AGCM+FACR"]
    aus = list(facr_model.config.aus)
    picked = []
    for r in records:
        shown = [a for a, d in zip(aus, drawn(r, aus)) if d and a in ("AU12", "AU4", "AU1", "AU6", "AU15", "AU26")]
        if shown and r.emotion not in {p.emotion for p in picked}:
            picked.append(r)
        if len(picked) == n_faces:
            break
    cols = ["face", "true region", "Grad-CAM (FACR)", "CE-FAM (FACR)", "AGCM attention"]
    fig, axes = plt.subplots(len(picked), len(cols), figsize=(2.0 * len(cols), 2.1 * len(picked)), squeeze=False)
    for i, r in enumerate(picked):
        size = facr_model.config.encoder.image_size
        px = load_image(r.image, size)
        a = max((x for x, d in zip(aus, drawn(r, aus)) if d), key=lambda x: r.au_intensity.get(x) or 0)
        k = aus.index(a)
        masks, _ = region_masks(r, aus, size)
        mask = np.kron(masks[k].astype(np.float32), np.ones((4, 4)))
        x = torch.from_numpy(np.array(px))[None]
        heats = [M.to_image(M.au_maps(facr_model, x, "gradcam").maps, size)[0, k],
                 M.to_image(M.au_maps(facr_model, x, "cefam").maps, size)[0, k],
                 M.to_image(M.au_maps(agcm_model, x, "agcm").maps, size)[0, agcm_model.config.aus.index(a)]]
        panels = [px, blend(px, mask, 0.6)] + [blend(px, h) for h in heats]
        for j, img in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img)
            ax.axis("off")
            ax.set_title(f"{cols[j]}" + (f"\n{r.emotion}" if j == 0 else f"\n{a}" if j == 1 else ""), fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(run(main))
