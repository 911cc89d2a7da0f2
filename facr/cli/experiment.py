"""``facr experiment``: arms × seeds × folds → train → audit → one table with statistics."""

from __future__ import annotations

from facr.cli.base import Command, Group, add_json, add_no_progress, example, print_json
from facr.errors import FacrError


def cmd_experiment_run(args) -> int:
    from facr.audit.experiment import Experiment, load_experiment, render_results

    try:
        spec = load_experiment(args.file)
    except OSError as exc:
        raise FacrError(args.file, f"cannot read: {exc.strerror or exc}") from None
    if args.data:
        spec.data.path = args.data
    exp = Experiment(spec, args.file, args.out)
    if args.dry_run:
        cells = exp.cells()
        for c in cells:
            print(f"{'done' if c.done else 'todo'}  {c.arm.name} · seed {c.seed} · {c.fold}  ->  {c.path}")
        print(f"{len(cells)} cells, {sum(c.done for c in cells)} done")
        return 0
    results = exp.run(progress=not (args.no_progress or args.json))
    if args.json:
        print_json({k: v for k, v in results.items() if k != "rows"})
    else:
        print(render_results(results), end="")
        print(f"wrote {exp.out}/results.md and results.json")
    return 0


def _run_arguments(p) -> None:
    p.add_argument("file", help="experiment YAML (see audits/README.md)")
    p.add_argument("--out", default=None,
                   help="experiment folder (default: the file's out, else runs/experiments/NAME)")
    p.add_argument("--data", default=None, help="the training data folder (overrides the file's data.path)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and whether they are done; run nothing")
    add_json(p, "print the results as one JSON object")
    add_no_progress(p, "no progress bars")


GROUP = Group("experiment", "arms x seeds x folds -> train -> audit -> one table with statistics", commands=(
    Command("run", "run (or resume) an experiment file and print its results table", _run_arguments,
            cmd_experiment_run,
            description="Train every cell (arm, seed, fold) of an experiment that is not finished, audit it, and "
                        "aggregate: per-subject values averaged over seeds, paired Wilcoxon across subjects with Holm "
                        "correction, Cohen's d, bootstrap CIs. Finished cells are reused; interrupted ones resume.",
            epilog=example("facr experiment run audits/synth_table1.yaml",
                           "facr experiment run audits/unbc_table1.yaml --dry-run      (list the cells)")),
))
