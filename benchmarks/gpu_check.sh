#!/usr/bin/env bash
# Benchmarks 1-4 on a CUDA machine with BERT-base shapes and bf16 (under 5 minutes on one recent GPU):
#   bash benchmarks/gpu_check.sh            # writes outputs/bench/gpu_*.json and prints JSON lines
# DEVICE=cpu REPEATS=1 bash benchmarks/gpu_check.sh runs the same commands on a CPU (slowly), to check the script.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
DEVICE=${DEVICE:-cuda}
REPEATS=${REPEATS:-3}
MODELS=${MODELS:-"1 2 5 10"}
BF16=$( [ "$DEVICE" = cuda ] && echo --bf16 || true )
$PY -c "import torch; print('device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu', '| torch', torch.__version__)"
start=$(date +%s)
$PY benchmarks/bench_training.py --shapes bert-base --models $MODELS --device $DEVICE $BF16 --repeats $REPEATS --no-memory --out outputs/bench/gpu_training.json
$PY benchmarks/bench_masking.py --shape bert-base --models 5 --examples ${EXAMPLES:-256} --batch-size ${BATCH:-256} --device $DEVICE --repeats $REPEATS --out outputs/bench/gpu_masking.json
$PY benchmarks/bench_peft.py --shapes bert-base --device $DEVICE $BF16 --repeats $REPEATS --out outputs/bench/gpu_peft.json
$PY benchmarks/bench_flops.py --shapes bert-base --models 5 --device $DEVICE $BF16 --repeats $REPEATS --out outputs/bench/gpu_flops.json
echo "gpu_check: $(( $(date +%s) - start )) s"
