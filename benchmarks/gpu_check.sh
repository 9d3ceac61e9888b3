#!/usr/bin/env bash
# GPU check for the samplers (needs CUDA; under 8 minutes on one H100):
#   1. the equivalence tests marked `gpu` (cuda-graph and cached on CUDA against naive), and
#   2. `wavebench speed` on cpu and cuda at batch 1, 64 and 1024, writing OUT/speed.{csv,md,png}.
# Usage: benchmarks/gpu_check.sh [OUT_DIR]   (default: runs/gpu_check)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu_check}"
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p "$OUT"
"$PY" - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0))
PY
# 1. equivalence on CUDA (about a minute: naive in float64 on the CPU is the reference)
timeout 240 "$PY" -m pytest tests/test_sample.py -q -m gpu -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.txt"
# 2. speed: 2000 samples per stream, 5 repeats; naive only at batch 1 (it recomputes 3070 samples)
timeout 300 "$PY" -m wavebench speed --preset reference --devices cpu,cuda \
    --samplers naive,cached,fused,cuda-graph --batch 1,64,1024 --threads 2 --cpu-max-batch 64 \
    --samples 2000 --naive-samples 20 --repeats 5 -o "$OUT" 2>&1 | tee "$OUT/speed.txt"
