#pragma once
// The in-process engine: one thread that owns a Model and runs the scheduler loop.
//
// Each iteration runs ONE batched Model::Forward for every active sequence: one decode token for each
// sequence that is generating, plus prompt chunks of sequences still prefilling (at most prefill_chunk prompt
// tokens per step in total), so a long prefill never stalls the others' decoding. After each chunk the
// sequence's sink gets on_prefill_progress; a sequence whose prompt completes samples its first token from
// that same step's logits.
//
// Admission: requests wait in a FIFO queue (Submit throws QueueFull beyond max_queue) and are admitted in
// order when a sequence slot is free and the KV pool can hold the whole request: prompt + clamped max_tokens,
// reserved up front, so a running sequence never runs out of KV blocks mid-generation. max_tokens is clamped
// to what the context (and the pool) still holds after the prompt.
//
// Prefix reuse: at admission the prompt is matched against the KV contents (prompt + fed tokens) of running
// sequences and of up to prefix_cache_entries finished ones kept for that purpose; the longest common prefix
// (all but the last prompt token at most) is shared with Sequences::Fork instead of being prefilled, and
// reported as Finish::cached_prompt_tokens. Cache entries are reclaimable: they are evicted, least recently
// used first, whenever admission needs their blocks or sequence slots; EngineStats::kv_blocks_cached counts
// them. A sequence that ends in kError is never kept.
#include <memory>

#include "backend/backend.h"
#include "engine/engine.h"
#include "model/model.h"

namespace pensieve::engine {

struct EngineOptions {
  int max_queue = 64;        // waiting (not yet admitted) requests; more -> QueueFull
  int max_running = 16;      // sequences generating at once (also bounded by the model's max_sequences)
  int prefill_chunk = 256;   // prompt tokens per step, over all prefilling sequences
  int prefix_cache_entries = 8;  // finished sequences kept for prefix reuse (0: off); bounded by the model's
                                 // max_sequences - max_running
  // Before taking requests, run one prefill chunk and one decode step on a scratch sequence, so that the first
  // request does not pay for the backend's first use of each kernel and matrix shape (on a GPU: cuBLAS's
  // choices, module loading, the first recording of the decode step; about 100 ms).
  bool warm_up = false;
};

// Starts the engine thread. The engine owns the model, and the backend when given (destroyed after the
// model); without it the caller keeps the backend alive until the engine is destroyed. Throws Error for
// options out of range.
std::unique_ptr<Engine> StartLocalEngine(std::unique_ptr<model::Model> model, EngineOptions options,
                                         std::unique_ptr<backend::Backend> backend = nullptr);

}  // namespace pensieve::engine
