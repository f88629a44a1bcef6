#!/usr/bin/env bash
# Nsight Compute on a few decode steps of a random Llama-3-8B MLX 4-bit model (on the GPU machine, after
# tools/gpu/bundle.sh). A: every kernel's duration; B: the tiled decode matmuls in detail. Results under $OUT.
# Kernels are matched by mangled name (template instances are otherwise hard to select), and with a name
# filter --launch-skip counts matching launches only: 140 skips the prefill and the first decode step.
set -uo pipefail
source tools/gpu/env.sh
m=/tmp/models/llama-3-8b-mlx4
[ -d "$m" ] || .dev/pensieve random-model $m --shape llama-3-8b --dtype mlx4 > /dev/null
ncu --version | tail -1
PENSIEVE_CUDA_GRAPHS=0 timeout 300 ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv \
  .dev/pensieve bench --model $m --device cuda -p 16 -n 3 > $OUT/durations.csv 2> $OUT/ncu_a.err
tail -2 $OUT/ncu_a.err; wc -l $OUT/durations.csv
PENSIEVE_CUDA_GRAPHS=0 timeout 200 ncu --clock-control none --kernel-name-base mangled --kernel-name regex:Tiled \
  --launch-skip 140 --launch-count 5 --section SpeedOfLight --section Occupancy --section WarpStateStats \
  --section MemoryWorkloadAnalysis --section SchedulerStats --section InstructionStats \
  .dev/pensieve bench --model $m --device cuda -p 16 -n 8 > $OUT/detail.txt 2> $OUT/ncu_b.err
tail -2 $OUT/ncu_b.err; wc -l $OUT/detail.txt
