#!/usr/bin/env bash
# What issue 7 asks of a CUDA machine, in parts that each fit a 10-minute call:
#
#   bash benchmarks/gpu.sh step OUTDIR   # train step: HG8 and HG2, fp32 / bf16 / channels_last /
#                                        # compile, peak memory, the conv roofline
#   bash benchmarks/gpu.sh data OUTDIR   # loader on every core, predict with/without flip, and
#                                        # an end-to-end HG8 bf16 run of hgx on the synthetic set
#   bash benchmarks/gpu.sh tests OUTDIR  # the CUDA paths of the test suite (device auto = cuda)
#
# Each part writes JSON and logs into OUTDIR (default gpu-results). It needs no network: hgx
# runs from this checkout (PYTHONPATH); without simplejpeg the loader decodes with cv2.
set -uo pipefail
part=${1:-step}
out=${2:-gpu-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HGX_CACHE_DIR=${HGX_CACHE_DIR:-/tmp/hgx-cache}
peak=${PEAK_TFLOPS:-790}   # the card's dense bf16 peak (README of benchmarks: pass yours)
cores=$(nproc)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python - <<'EOF' | tee -a "$out/gpu.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn",
      torch.backends.cudnn.version(), torch.cuda.get_device_name(0))
EOF

case "$part" in
step)
    python benchmarks/bench_train_step.py --device cuda --models 8x256 --peak-tflops "$peak" \
        --variants fp32,channels_last,bf16,channels_last+bf16,channels_last+bf16+compile \
        --json "$out/train_hg8.json" 2>&1 | tee "$out/train_hg8.log"
    python benchmarks/bench_train_step.py --device cuda --models 2x256 --peak-tflops "$peak" \
        --variants fp32,channels_last+bf16,channels_last+bf16+compile --roofline \
        --json "$out/train_hg2.json" 2>&1 | tee "$out/train_hg2.log"
    ;;
data)
    python benchmarks/bench_loader.py --device cuda --workers "$cores" --json "$out/loader.json" \
        2>&1 | grep -v '^JSON' | tee "$out/loader.log"
    python benchmarks/bench_predict.py --device cuda --workers $((cores - 1)) \
        --json "$out/predict.json" 2>&1 | grep -v '^JSON' | tee "$out/predict.log"
    # End to end: the loader feeding HG8 bf16 channels_last, batch 32, on 1280x720 JPEGs.
    HGX_EXP_DIR=/tmp/hgx-exp python -m hgx new e2e-hg8 --dataset synthetic \
        --synth-size 1280x720 --stacks 8 --features 256 --input-res 256 --output-res 64 \
        --batch-size 32 --valid-batch-size 64 --train-iters 60 --valid-iters 4 --epochs 2 \
        --workers $((cores - 1)) --device cuda 2>&1 | tee "$out/e2e.log"
    cp /tmp/hgx-exp/e2e-hg8/train.log "$out/e2e_train.tsv" 2>/dev/null
    python - /tmp/hgx-exp/e2e-hg8/state.json <<'EOF' | tee -a "$out/e2e.log"
import json, sys
s = json.load(open(sys.argv[1]))
print("precision", s.get("precision"), "epochs_done", s.get("epochs_done"))
EOF
    ;;
tests)
    python -m pytest -q -p no:cacheprovider -x tests/test_workflow.py tests/test_distributed.py \
        tests/test_finalize.py tests/test_viz.py 2>&1 | tee "$out/tests.log"
    ;;
*)
    echo "usage: bash benchmarks/gpu.sh step|data|tests [OUTDIR]" >&2
    exit 2
    ;;
esac
