#!/usr/bin/env bash
# The GPU checks of docs/pipeline-and-parameters.md ("On a GPU"), in one go, on a machine with CUDA
# and lsdm installed (`make bench-gpu`). Each runs even if one before it failed; the exit status says
# whether all passed. Figures go to OUT (default: results/benchmarks/).
#
#   benchmarks/gpu_checks.sh [OUT]
set -u
out=${1:-results/benchmarks}
python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device here: nothing to check')" || exit 1
mkdir -p "$out"
status=0
python3 -m pytest -q -m gpu tests/test_gpu.py || status=1
python3 benchmarks/bench_matcher.py --device cuda --graph --out "$out/bench_matcher-cuda-graph.json" || status=1
python3 benchmarks/bench_pipeline.py --json "$out/bench_pipeline-shipped-cuda.json" || status=1
exit $status
