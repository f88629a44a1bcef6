#pragma once
// Moving a weight binding (host memory: matrices in the mapped files, vectors in the binding) into a backend.
//
// A backend that computes on host memory uses the binding as it is. Any other gets one allocation holding
// every tensor the binding uses, each copied once from where it is mapped (tensor by tensor: never a full host
// copy of the model), and a binding whose MatRefs and Tensors point into that allocation. Views into one
// tensor (Phi-3's fused qkv_proj split into q, k, v) stay views into its one copy.
#include <cstdint>
#include <memory>

#include "backend/backend.h"
#include "model/weights.h"

namespace pensieve::model {

// Bytes UploadWeights allocates for `host` (each tensor padded to 256-byte alignment).
int64_t UploadBytes(ModelWeights& host);

// The binding as the backend sees it. Its vectors may point into `host`, which must outlive it.
struct BackendWeights {
  ModelWeights weights;                      // addresses in the backend's memory (views: owns no vectors)
  std::unique_ptr<backend::Buffer> storage;  // null when the backend uses the binding in place
  int64_t bytes = 0;                         // allocated for weights
};

BackendWeights UploadWeights(ModelWeights& host, backend::Backend& backend);

}  // namespace pensieve::model
