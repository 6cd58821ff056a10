#!/usr/bin/env bash
# Rough Bergomi hard-corner references on a GPU, in one device call (docs/accuracy.md 1.2, "On a GPU").
#
#   bash benchmarks/accuracy/gpu_references.sh [CASES] [FINE_STEPS] [LOG2_POINTS]
#
# Runs tests/models/make_rough_bergomi_quantiles.py with its GEMMs and conditional moments on CUDA and pseudo-random
# normals made there (--normals mc: Sobol points are made on the CPU, which would dominate at n_f = 4096), writing
# the two JSON files, the GPU's name and the log into $OUT (or results/gpu_references). Copy the cases it wrote into
# tests/models/data/rough_bergomi_quantiles.json (and benchmarks/accuracy/measurements/rb_grids.json), then re-measure
# with `python -m benchmarks.accuracy.rb_scheme_tables --cells` and `python -m benchmarks.accuracy.rb_leverage_match`.
# Needs python3 with torch (CUDA), numpy and scipy; nothing of density_engine.
set -euo pipefail
cd "$(dirname "$0")/../.."
cases=${1:-eta3_H01:252}
fine_steps=${2:-4096}
log2_points=${3:-19}
out=${OUT:-results/gpu_references}
mkdir -p "$out"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))" \
  | tee "$out/gpu.txt"
PYTHONUNBUFFERED=1 python3 tests/models/make_rough_bergomi_quantiles.py --device cuda --normals mc \
  --fine-steps "$fine_steps" --log2-points "$log2_points" --cases "$cases" --output "$out" 2>&1 | tee "$out/log.txt"
