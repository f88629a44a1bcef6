#include "backend/device.h"

#include <cstdio>

#include "backend/cpu/bandwidth.h"
#include "backend/cpu/cpu_backend.h"
#include "util/error.h"

#ifdef PENSIEVE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace pensieve::backend {

bool CudaCompiled() {
#ifdef PENSIEVE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Backend> MakeBackend(const DeviceOptions& o) {
  if (!(o.device == "cpu" || o.device == "cuda" || o.device == "auto"))
    throw Error("--device: expected cpu, cuda or auto, got '" + o.device + "'");
  cpu::AffineMath math = cpu::AffineMath::kInt8;
  if (o.cpu_matmul == "fine") {
    math = cpu::AffineMath::kInt8Fine;
  } else if (o.cpu_matmul == "float") {
    math = cpu::AffineMath::kFloat;
  } else if (o.cpu_matmul != "int8") {
    throw Error("--cpu-matmul: expected int8, fine or float, got '" + o.cpu_matmul + "'");
  }
  if (o.device == "cpu") return std::make_unique<cpu::CpuBackend>(o.threads, math);
#ifdef PENSIEVE_HAVE_CUDA
  if (o.device == "cuda" || cuda::Probe().usable) return cuda::MakeCudaBackend({0, o.gpu_memory_limit});
#else
  if (o.device == "cuda") throw Error("--device cuda: this build of pensieve has no CUDA backend (built without nvcc)");
#endif
  return std::make_unique<cpu::CpuBackend>(o.threads, math);
}

double MeasureBandwidth(const Backend& backend, int threads) {
#ifdef PENSIEVE_HAVE_CUDA
  if (!backend.HostMemory()) return cuda::MeasureCopyBandwidth();
#endif
  return cpu::MeasureReadBandwidth(threads) * 1e9;
}

GpuReport ReportGpu() {
  GpuReport r;
#ifdef PENSIEVE_HAVE_CUDA
  const cuda::GpuStatus s = cuda::Probe();
  if (!s.usable) {
    r.description = s.reason;
    return r;
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %d SMs), %.1f GiB free of %.1f GiB", s.name.c_str(), s.sm_major,
                s.sm_minor, s.multiprocessors, s.free_bytes / double(int64_t{1} << 30),
                s.total_bytes / double(int64_t{1} << 30));
  r.usable = true;
  r.description = buf;
  r.free_bytes = s.free_bytes;
  r.total_bytes = s.total_bytes;
#else
  r.description = "this build has no CUDA backend";
#endif
  return r;
}

}  // namespace pensieve::backend
