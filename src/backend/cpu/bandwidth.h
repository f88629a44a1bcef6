#pragma once
// Measured memory read bandwidth: the limit batch-1 decoding is judged against (docs/performance.md).
#include <cstddef>

namespace pensieve::backend::cpu {

// Streams `bytes` (default 1 GiB) of resident memory with `threads` threads summing in SIMD registers; returns
// the best of `repeats` passes in GB/s (1e9 bytes per second).
double MeasureReadBandwidth(int threads, size_t bytes = size_t{1} << 30, int repeats = 3);

}  // namespace pensieve::backend::cpu
