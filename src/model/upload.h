#pragma once
// Moving a weight binding (host memory: matrices in the mapped files, vectors in the binding) into a backend.
//
// A backend that computes on host memory uses the binding as it is (but for matrices its Relayout rewrites
// into memory of its own: the CPU's integer kernels' tiles). Any other gets one allocation holding
// every tensor the binding uses, each copied once from where it is mapped (tensor by tensor: never a full host
// copy of the model), and a binding whose MatRefs and Tensors point into that allocation. Views into one
// tensor (Phi-3's fused qkv_proj split into q, k, v) stay views into its one copy.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "model/weights.h"

namespace pensieve::model {

// Bytes UploadWeights allocates for `host` (each tensor padded to 256-byte alignment).
int64_t UploadBytes(ModelWeights& host);

// The binding as the backend sees it. Its vectors may point into `host`, which must outlive it.
struct BackendWeights {
  ModelWeights weights;                      // addresses in the backend's memory (views: owns no vectors)
  std::unique_ptr<backend::Buffer> storage;  // null when the backend uses the binding in place
  std::vector<std::unique_ptr<backend::Buffer>> relaid;  // matrices a backend rewrote into new memory
  int64_t bytes = 0;                         // allocated for weights (storage and relaid)
};

// `copied(p, bytes)` is told of every host range a host backend's Relayout copied into memory of its own
// (the range is no longer read where it is: the caller may let its pages go).
BackendWeights UploadWeights(ModelWeights& host, backend::Backend& backend,
                             const std::function<void(const void*, int64_t)>& copied = nullptr);

}  // namespace pensieve::model
