#!/usr/bin/env bash
# The checks that need a GPU, as one script for a machine with CUDA (the device tool here):
#   the `gpu` tests, benchmarks/train_step.py on CUDA (spikingjelly's automatic CUDA LIF
#   and its torch one as plain baselines), then, on the CPU cores, issue 2's acceptance grid.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR] [ACCEPTANCE_ARGS...]
# Wheels in .whl/ (spikingjelly, loguru) are installed to /tmp/site first where present.
set -uo pipefail
status=0   # 1 if any step failed: the script exits with it after running them all
out=${1:-${OUT:-/tmp/gpu_check}}; shift || true
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, os; print('torch', torch.__version__, torch.cuda.get_device_name(), os.cpu_count(), 'cpus')"
echo "== gpu tests"
python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.log" \
  || status=1
echo "== train_step on cuda (spikingjelly's automatic CUDA LIF as plain)"
python3 benchmarks/train_step.py --models digits_cnn,vgg11 --steps 50 --breakdown --device cuda \
  2>&1 | tee "$out/train_step_cuda.log" || status=1
echo "== train_step on cuda (SJ_LIF_CUDA_IMPLEMENTATION=torch)"
SJ_LIF_CUDA_IMPLEMENTATION=torch python3 benchmarks/train_step.py --models digits_cnn,vgg11 \
  --steps 50 --device cuda 2>&1 | tee "$out/train_step_cuda_torch.log" || status=1
if [ $# -gt 0 ]; then
  echo "== acceptance grid: $*"
  python3 benchmarks/digits_acceptance.py --out "$out/acceptance.md" "$@" 2>&1 \
    | tee "$out/acceptance.log" || status=1
fi
exit "$status"
