#!/usr/bin/env bash
# Benchmarks 1-4 on a CUDA machine with BERT-base shapes and bf16, and the micro experiment's whole pipeline on the
# GPU against the CPU. Meant to take under 5 minutes on one recent GPU: 190 s on an H200 (README, "On a GPU").
# Each step prints its own seconds.
#   bash benchmarks/gpu_check.sh            # writes outputs/bench/gpu_*.json and prints JSON lines
# DEVICE=cpu REPEATS=1 bash benchmarks/gpu_check.sh runs the same commands on a CPU (slowly), to check the script.
# Each step runs even if one before it failed; the script fails at the end, naming the steps that did.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
DEVICE=${DEVICE:-cuda}
REPEATS=${REPEATS:-3}
MODELS=${MODELS:-"1 2 5 10"}
BATCHES=${BATCHES:-"4 32"}     # examples per training step: the CPU benchmark's 4, and one near the study's GPU micro-batch
BF16=$( [ "$DEVICE" = cuda ] && echo --bf16 || true )
failed=()
# a step is named by its script or test file
step() { local t=$(date +%s) name; name=$(basename "$(printf '%s\n' "$@" | grep -m1 '\.py')"); echo "== $*"; "$@" || failed+=("$name"); echo "== $name: $(( $(date +%s) - t )) s"; }
$PY -c "import torch; print('device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu', '| torch', torch.__version__)"
start=$(date +%s)
step $PY benchmarks/bench_training.py --shapes bert-base --models $MODELS --batch $BATCHES --device $DEVICE $BF16 --repeats $REPEATS --no-memory --stacked-prompts-shapes bert-base --random-lengths --out outputs/bench/gpu_training.json
# the loops read 64 examples per forward; the batched variants put all 17 variants of 64 examples in one forward
step $PY benchmarks/bench_masking.py --shape bert-base --models 5 --examples ${EXAMPLES:-64} --batch-size ${BATCH:-64} --batched-batch-size ${BATCHED_BATCH:-1088} --device $DEVICE $BF16 --repeats $REPEATS --out outputs/bench/gpu_masking.json
step $PY benchmarks/bench_peft.py --shapes bert-base --batch ${PEFT_BATCHES:-8 32} --device $DEVICE $BF16 --repeats $REPEATS --out outputs/bench/gpu_peft.json
step $PY benchmarks/bench_flops.py --shapes bert-base --models 5 --batch ${BATCHES##* } --device $DEVICE $BF16 --repeats $REPEATS --out outputs/bench/gpu_flops.json
step $PY benchmarks/gpu_pipeline.py --device $DEVICE --out outputs/bench/gpu_pipeline.json
# the tests that need a GPU (skipped on a CPU): evaluation takes models that stayed on the CPU to the GPU
[ "$DEVICE" = cuda ] && step $PY -m pytest -q tests/test_foundation.py -k gpu
echo "gpu_check: $(( $(date +%s) - start )) s${failed:+, failed: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
