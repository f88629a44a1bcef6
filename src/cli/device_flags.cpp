#include "cli/device_flags.h"

#include <cmath>

#include "backend/device.h"
#include "util/error.h"

namespace pensieve::cli {

void AddDeviceFlags(CLI::App* cmd, DeviceFlags* f) {
  cmd->add_option("--device", f->device, "cpu, cuda or auto (auto: the GPU when one is usable)")->capture_default_str();
  cmd->add_option("--threads", f->threads, "CPU threads (0: all)")->capture_default_str();
  cmd->add_option("--gpu-memory", f->gpu_memory_gib, "Most GPU memory to use, in GiB (0: all that is free)")
      ->capture_default_str();
  cmd->add_option("--cpu-matmul", f->cpu_matmul,
                  "How the CPU multiplies 4/8-bit weights: int8 (activations rounded to 8 bits, as llama.cpp; fastest), "
                  "fine (16-bit activations: logits within ~1e-3 of float; prefill ~40% slower) or float")
      ->capture_default_str();
}

std::unique_ptr<backend::Backend> MakeBackend(const DeviceFlags& f) {
  Require(std::isfinite(f.gpu_memory_gib) && f.gpu_memory_gib >= 0, "--gpu-memory must be >= 0");
  backend::DeviceOptions o;
  o.device = f.device;
  o.threads = f.threads;
  o.gpu_memory_limit = static_cast<int64_t>(f.gpu_memory_gib * double(int64_t{1} << 30));
  o.cpu_matmul = f.cpu_matmul;
  return backend::MakeBackend(o);
}

}  // namespace pensieve::cli
