#pragma once
// The CUDA backend: one NVIDIA GPU (built for Hopper, sm_90a, with a PTX fallback), one stream.
//
// What lives on the device: the weights (uploaded once at load), activations, the KV storage (bf16 for
// models that are not f32, f32 for f32 models), the step metadata and the sampler. One step enqueues all its
// work on the stream; only the sampled token ids and logprobs (or logits a caller asks for) come back.
// Decode steps are recorded as CUDA graphs, one per padded batch size (DecodeRows), and replayed.
//
// This header needs no CUDA headers: the CLI and tests include it in plain C++ builds.
#include <cstdint>
#include <memory>
#include <string>

#include "backend/backend.h"

namespace pensieve::backend::cuda {

struct CudaOptions {
  int device = 0;
  int64_t memory_limit = 0;  // > 0: act as if the GPU had at most this many bytes for us (tests, sharing)
};

// What a probe of the GPU found.
struct GpuStatus {
  bool usable = false;
  std::string reason;  // why not, when !usable (no driver, no device, too old)
  std::string name;
  int sm_major = 0, sm_minor = 0;
  int multiprocessors = 0;
  int64_t free_bytes = 0, total_bytes = 0;
};

GpuStatus Probe(int device = 0);

// Throws pensieve::Error with one clear line when the GPU is not usable.
std::unique_ptr<Backend> MakeCudaBackend(const CudaOptions& options);

// Device-to-device copy bandwidth (bytes read + written per second), the ceiling `bench` reports against:
// the best of `repeats` copies of `bytes`.
double MeasureCopyBandwidth(int64_t bytes = int64_t{2} << 30, int repeats = 5);

}  // namespace pensieve::backend::cuda
