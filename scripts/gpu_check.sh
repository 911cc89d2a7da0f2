#!/usr/bin/env bash
# The GPU checks, as one script for a lent CUDA machine (the device tool; see docs/development.md):
#   1. the gpu-marked tests (paper-size Qwen3-0.8B / Gemma-3-1B-shaped backbones in 4-bit NF4 through
#      bitsandbytes, a verbalizer trained on top, gated generation on CUDA);
#   2. the paper-size Stage-1 path: ResNet-18 at 224x224 on a synthetic benchmark, bf16 autocast through
#      accelerate, then the reasoner's audit on its test split.
# It runs on that machine's own python (torch, transformers, peft, accelerate are there); wheels it lacks
# travel in .whl/ (bitsandbytes; datasets, dill, multiprocess for the benchmark writer). Output goes to $OUT when set (the device tool), else ./gpu-out.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
WORK=$(mktemp -d)  # scratch: the wheels' site, the benchmark, the run (never a fixed /tmp path)
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl || exit 1
  export PYTHONPATH=$WORK/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft, accelerate, bitsandbytes as b; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, 'bitsandbytes', b.__version__)" | tee -a "$OUT/gpu.txt"

echo "== 1. gpu-marked tests"
rc_tests=0
if [ "${GPU_TESTS:-1}" = 1 ]; then
  python3 -m pytest -m gpu -q -p no:cacheprovider tests/verbalizer/test_gpu.py 2>&1 | tee "$OUT/pytest-gpu.txt"
  rc_tests=${PIPESTATUS[0]}
fi

echo "== 2. ResNet-18 at 224x224 (bf16), synthetic benchmark"
D=$WORK/synth R=$WORK/r18
python3 - "$D" <<'PY'
import sys, time
from facr.data.synth import SynthConfig, write_synth
t = time.time()
s = write_synth(sys.argv[1], SynthConfig(n=3000, seed=23, size=224, shortcut=0.0), workers=8)
print(f"rendered 3000 faces at 224x224 in {time.time() - t:.1f} s")
PY
cat > "$WORK/r18.yaml" <<YAML
data: {path: $D, task: emotion, image_size: 224, augment: true, num_workers: 4}
encoder: {arch: resnet-18}
graph: truth
faith: "on"
loss: {lambda_a: 1.0, lambda_s: 0.5, lambda_i: 8.0, gamma: 0.5, scope: all}
lr: 0.001
batch_size: 128
epochs: 6
mixed_precision: bf16
seed: 0
out: $R
YAML
t0=$(date +%s)
python3 -m accelerate.commands.launch --config_file recipes/accelerate/gpu_1.yaml recipes/train_reasoner.py \
  --config "$WORK/r18.yaml" --no-progress > "$OUT/r18-metrics.json" 2> "$OUT/r18-stderr.txt"
rc_train=$?
echo "trained in $(( $(date +%s) - t0 )) s (exit $rc_train)" | tee "$OUT/r18-time.txt"
cat "$OUT/r18-metrics.json"; tail -5 "$OUT/r18-stderr.txt"
echo "tests exit $rc_tests, train exit $rc_train"
[ "$rc_tests" = 0 ] && [ "$rc_train" = 0 ]
