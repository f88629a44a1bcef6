#pragma once
// The flags that pick where a model runs, shared by serve, generate and bench:
//   --device cpu|cuda|auto   (auto: the GPU when one is usable)
//   --threads N              (cpu threads; 0: all)
//   --gpu-memory GIB         (the most GPU memory to use; 0: all that is free)
//   --cpu-matmul int8|fine|float  (how the CPU multiplies 4/8-bit weights: backend/cpu/cpu_backend.h AffineMath)
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "backend/backend.h"

namespace pensieve::cli {

struct DeviceFlags {
  std::string device = "auto";
  int threads = 0;
  double gpu_memory_gib = 0;
  std::string cpu_matmul = "int8";
};

void AddDeviceFlags(CLI::App* cmd, DeviceFlags* flags);
// Throws pensieve::Error (one line) for a bad flag or an unusable GPU.
std::unique_ptr<backend::Backend> MakeBackend(const DeviceFlags& flags);

}  // namespace pensieve::cli
