#!/usr/bin/env bash
# `make demo`: the main job on the embedded default. Run through the Makefile (it sets up .venv).
set -euo pipefail
OUT="${1:-demo-out}"
FACR="${FACR:-.venv/bin/facr}"
# The demo writes into OUT, and a second run replaces what the first wrote. So OUT must be missing, empty, or a
# folder an earlier `make demo` wrote (it holds this marker): a folder of yours is never written into.
MARKER=.facr-demo
if [ -d "$OUT" ] && [ -n "$(ls -A "$OUT")" ] && [ ! -f "$OUT/$MARKER" ]; then
  echo "make demo: $OUT: is not empty and make demo did not write it (no $MARKER): choose another DEMO=" >&2
  exit 2
fi
mkdir -p "$OUT"
touch "$OUT/$MARKER"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# The demo trains one seed, and one seed's comparison moves with the seed and with the machine (CPU
# kernels and thread counts change the arithmetic): on another machine the arms' order by accuracy,
# AU F1 and shortcut reliance flipped. So every comparison it prints says so and shows the committed
# 3-seed results, which are what the docs' claims rest on.
SEEDS=audits/results/synth_demo_seeds/results.md
one_seed() {
  printf '\nOne training seed (0), on this machine: these figures move with the seed and the machine. The\n'
  printf 'comparison over seeds 0, 1, 2 (facr experiment run audits/synth_demo_seeds.yaml) is committed in\n'
  printf '%s; only the differences whose sign holds in every seed are claims.\n' "$SEEDS"
}

step "The verified EMFACS + PSPI graph"
"$FACR" graph validate graphs/emfacs.json
"$FACR" graph show graphs/emfacs.json
"$FACR" graph draw graphs/emfacs.json --out "$OUT/emfacs.png" --overwrite

step "The corrupted-graph control, and what it changes"
"$FACR" graph permute graphs/emfacs.json --seed 1 --out "$OUT/emfacs-permuted.json" --overwrite
"$FACR" graph diff graphs/emfacs.json "$OUT/emfacs-permuted.json" | head -n 12

step "The known-structure synthetic benchmark (the embedded default data)"
"$FACR" data synth --out "$OUT/synth" --n 4000 --seed 0 --shortcut 0.9 --overwrite
"$FACR" data inspect "$OUT/synth"
"$FACR" data preview "$OUT/synth" --out "$OUT/synth-grid.png" --n 32 --overwrite

step "Induce G from the benchmark's labels and compare it with the true graph"
"$FACR" graph induce --data "$OUT/synth" --out "$OUT/induced.json" --bootstrap 20 --overwrite
"$FACR" graph diff "$OUT/synth/graph.json" "$OUT/induced.json" | head -n 1

step "Stage 1: train the faithful reasoner (FACR) and its controls, audit them (audits/synth_demo.yaml)"
"$FACR" experiment run audits/synth_demo.yaml --data "$OUT/synth" --out "$OUT/experiment" --no-progress > "$OUT/experiment.md"
CELLS="$OUT/experiment/cells"
RUNS=("$CELLS/facr/seed0/fixed" "$CELLS/faith-off/seed0/fixed" "$CELLS/permuted/seed0/fixed")

step "FACR vs its controls on the test split (no shortcut there), audited against the true graph"
"$FACR" train table "${RUNS[@]}" | tee "$OUT/table.md"
one_seed

step "The audit report of the FACR model: $OUT/audit/facr/report.md"
"$FACR" audit --model "${RUNS[0]}" --data "$OUT/synth" --out "$OUT/audit/facr" --overwrite --no-progress

step "FACR against its controls, with paired statistics across the test subjects (one seed)"
cat "$OUT/experiment.md"
one_seed

step "For comparison, not from this run: the committed 3-seed figures and the sign of each difference ($SEEDS)"
if [ -f "$SEEDS" ]; then
  awk '/^## Across training seeds/ { on = 1; print; next } on && /^## / { exit } on' "$SEEDS"
else
  echo "($SEEDS is not in this checkout)"
fi

step "Stage 2: train the gated verbalizer on the frozen FACR reasoner (SmolLM2-135M, offline)"
"$FACR" train verbalizer --config recipes/configs/verbalizer_synth.yaml --reasoner "${RUNS[0]}" \
  --data "$OUT/synth" --out "$OUT/verbalizer" --overwrite --no-progress

step "The rationale audit: regenerate under every do(z_k = 0), gated (plan and realise), soft (the paper's gate) and free: $OUT/audit/rationale/report.md"
"$FACR" audit --model "$OUT/verbalizer" --data "$OUT/synth" --rationale --limit 8 --out "$OUT/audit/rationale" \
  --overwrite --no-progress

step "Done: outputs in $OUT/"
ls -1 "$OUT"

if [ "${CHAT:-1}" != "0" ]; then
  step "The chat explainer on the models just trained: open the URL below, give a face, ask why and what if (Ctrl-C ends the demo)"
  exec "$FACR" chat --verbalizer "$OUT/verbalizer" --data "$OUT/synth" --port "${CHAT_PORT:-7860}"
fi
