#!/usr/bin/env bash
# `make demo`: the main job on the embedded default. Run through the Makefile (it sets up .venv).
set -euo pipefail
OUT="${1:-demo-out}"
FACR="${FACR:-.venv/bin/facr}"
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "The verified EMFACS + PSPI graph"
"$FACR" graph validate graphs/emfacs.json
"$FACR" graph show graphs/emfacs.json
"$FACR" graph draw graphs/emfacs.json --out "$OUT/emfacs.png"

step "The corrupted-graph control, and what it changes"
"$FACR" graph permute graphs/emfacs.json --seed 1 --out "$OUT/emfacs-permuted.json"
"$FACR" graph diff graphs/emfacs.json "$OUT/emfacs-permuted.json" | head -n 12

step "Done: outputs in $OUT/"
ls -1 "$OUT"
