#!/usr/bin/env bash
# Benchmarks 1-4 on a CUDA machine with BERT-base shapes and bf16 (autocast over fp32 weights, as training runs it),
# and the micro experiment's whole pipeline on the GPU against the CPU. Meant for one short, unattended call on a
# lent GPU: the correctness checks run first, every step has its own time limit, and every result is written as
# soon as its step ends. On an H200 the five steps took 190 s (README, "On a GPU"), before the near-empty steps,
# the random-length batches and the GPU tests were added; the limits below add up to 9 minutes at most.
#   bash benchmarks/gpu_check.sh     # JSON files and this script's log in $OUT if set (a folder that comes back), else outputs/bench
# DEVICE=cpu REPEATS=1 bash benchmarks/gpu_check.sh runs the same commands on a CPU (slowly), to check the script.
# Each step runs even if one before it failed or ran out of time; the script fails at the end, naming those steps.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"     # the package from this folder, installed or not
# .venv's python where it runs here (a copied .venv may point at a Python this machine lacks), else python3
PY=${PY:-$( .venv/bin/python -c "" 2>/dev/null && echo .venv/bin/python || command -v python3 || echo python )}
RESULTS=${OUT:-outputs/bench}
mkdir -p "$RESULTS"
exec > >(tee -a "$RESULTS/gpu_check.log") 2>&1
DEVICE=${DEVICE:-cuda}
REPEATS=${REPEATS:-3}
MODELS=${MODELS:-"1 2 5 10"}
BATCHES=${BATCHES:-"4 32"}     # examples per training step: the CPU benchmark's 4, and one near the study's GPU micro-batch
LIMIT_SCALE=${LIMIT_SCALE:-1}  # multiplies every step's time limit (a slower card, or a CPU self-check)
BF16=$( [ "$DEVICE" = cuda ] && echo --bf16 || true )
failed=()
# step SECONDS COMMAND...: run COMMAND under a time limit of SECONDS x LIMIT_SCALE; a step is named by its script or test file
step() {
    local limit=$(( $1 * LIMIT_SCALE )) t=$(date +%s) name; shift
    name=$(basename "$(printf '%s\n' "$@" | grep -m1 '\.py')")
    echo "== $* (limit $limit s)"
    timeout "$limit" "$@" || failed+=("$name")
    echo "== $name: $(( $(date +%s) - t )) s"
}
$PY -c "import torch; print('device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu', '| torch', torch.__version__)"
start=$(date +%s)
# correctness first: the whole pipeline on the device against the CPU, and the tests that need a GPU (skipped on a CPU)
step 90 $PY benchmarks/gpu_pipeline.py --device $DEVICE --out "$RESULTS/gpu_pipeline.json"
[ "$DEVICE" = cuda ] && step 90 $PY -m pytest -q -p no:cacheprovider tests/test_foundation.py -k gpu
step 150 $PY benchmarks/bench_training.py --shapes bert-base --models $MODELS --batch $BATCHES --device $DEVICE $BF16 --repeats $REPEATS --no-memory --stacked-prompts-shapes bert-base --random-lengths --out "$RESULTS/gpu_training.json"
# the loops read 64 examples per forward; the batched variants put all 17 variants of 64 examples in one forward
step 90 $PY benchmarks/bench_masking.py --shape bert-base --models 5 --examples ${EXAMPLES:-64} --batch-size ${BATCH:-64} --batched-batch-size ${BATCHED_BATCH:-1088} --device $DEVICE $BF16 --repeats $REPEATS --out "$RESULTS/gpu_masking.json"
step 60 $PY benchmarks/bench_peft.py --shapes bert-base --batch ${PEFT_BATCHES:-8 32} --device $DEVICE $BF16 --repeats $REPEATS --out "$RESULTS/gpu_peft.json"
step 60 $PY benchmarks/bench_flops.py --shapes bert-base --models 5 --batch ${BATCHES##* } --device $DEVICE $BF16 --repeats $REPEATS --out "$RESULTS/gpu_flops.json"
echo "gpu_check: $(( $(date +%s) - start )) s${failed:+, failed or out of time: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
