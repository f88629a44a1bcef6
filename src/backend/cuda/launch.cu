// The switch of overlapped launches (launch.cuh).
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"

namespace pensieve::backend::cuda {
namespace {
bool overlapped = true;
}  // namespace

bool OverlappedLaunches() { return overlapped; }
void SetOverlappedLaunches(bool on) { overlapped = on; }

}  // namespace pensieve::backend::cuda
