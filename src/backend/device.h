#pragma once
// Choosing the backend a command runs on: --device cpu|cuda|auto.
//
// auto: the GPU when this build has CUDA and a usable GPU is present, else the CPU. cuda where none is usable:
// pensieve::Error with one line saying why (no silent fallback to the CPU).
#include <cstdint>
#include <memory>
#include <string>

#include "backend/backend.h"

namespace pensieve::backend {

struct DeviceOptions {
  std::string device = "auto";  // cpu, cuda, auto
  int threads = 0;              // cpu threads (0: all)
  int64_t gpu_memory_limit = 0; // > 0: the most GPU memory to use, in bytes
  std::string cpu_matmul = "int8";  // int8, fine, float (cpu::AffineMath)
};

// Throws pensieve::Error for an unknown device name or an unusable GPU.
std::unique_ptr<Backend> MakeBackend(const DeviceOptions& options);

// Whether this build includes the CUDA backend.
bool CudaCompiled();

// The memory bandwidth a backend's decode speed is judged against, in bytes per second: the read bandwidth of
// `threads` host threads (cpu), or the device-to-device copy bandwidth counting bytes read and written (cuda).
double MeasureBandwidth(const Backend& backend, int threads);

// The GPU as `pensieve info` reports it: name, memory, or why there is none.
struct GpuReport {
  bool usable = false;
  std::string description;  // "NVIDIA H200 (sm_90, 132 SMs), 139.5 GiB free of 139.8 GiB" or the reason
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};
GpuReport ReportGpu();

}  // namespace pensieve::backend
