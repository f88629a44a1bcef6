#pragma once
// The compute backend: the narrow set of ops the one decoder (src/model) calls without knowing where they run.
//
// Conventions (all backends):
//  - Activations are f32, row-major, contiguous: a [T, D] tensor is T rows of D floats.
//  - Weights stay in their stored format (MatRef): f32/bf16/f16 rows or MLX affine-packed rows; no op makes a
//    dequantized copy of a weight.
//  - Ops never allocate: Reserve() sizes every scratch buffer up front (at model load), so a decode step
//    touches only memory that already exists.
//  - Ops are called from one thread at a time (the engine thread); they may use the backend's own threads.
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "backend/kv_cache.h"

namespace pensieve::backend {

// Element type of float weights, and of the scales/biases of affine-quantized weights.
enum class FloatType : uint8_t { kF32, kBF16, kF16, kCount };
size_t FloatTypeSize(FloatType t);

// A weight matrix W[rows, cols] (PyTorch Linear layout: out_features x in_features) as stored; not owned.
//  - kFloat: `data` holds rows*cols elements of `type`, row-major.
//  - kAffine (MLX affine quantization): `data` holds U32 words, cols*bits/32 per row; element j of a row sits
//    at bit offset j*bits of the row's little-endian bit stream (so with bits dividing 32, word j*bits/32,
//    shift (j*bits)%32). `scales` and `biases` are [rows, cols/group_size] of `type`;
//    value = scale * q + bias (biases may be null: then value = scale * q).
struct MatRef {
  enum class Kind : uint8_t { kFloat, kAffine };
  Kind kind = Kind::kFloat;
  FloatType type = FloatType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
  const void* scales = nullptr;
  const void* biases = nullptr;
  int bits = 0;
  int group_size = 0;

  // Bytes of one row of `data` (kAffine: packed words only).
  int64_t RowBytes() const;
  // Bytes one full read of the matrix touches (weights + scales + biases): the cost of a decode matmul.
  int64_t TotalBytes() const;
  // Rows [begin, begin + count) as a view: how fused projections (Phi-3 qkv_proj, gate_up_proj) are split.
  MatRef RowSlice(int64_t begin, int64_t count) const;
  // Throws pensieve::Error (naming `what`) if the layout is not one the kernels support.
  void Validate(const std::string& what) const;
};

// Rotary embedding for one forward call (HF "rotate_half" / NeoX layout: dim i pairs with i + rotary_dim/2).
// x[..., i] and x[..., i + half] rotate by angle pos * inv_freq[i] for i < half = rotary_dim / 2; dims past
// rotary_dim pass through (partial rotary). cos and sin are multiplied by attention_factor, as transformers
// does with its `attention_scaling` (longrope, yarn); 1 for default and llama3 rope.
struct RopeParams {
  int rotary_dim = 0;
  const float* inv_freq = nullptr;  // [rotary_dim / 2]
  float attention_factor = 1.0f;
};

// Attention of T query rows over the paged KV cache. Row t belongs to sequence seqs[t] at position pos[t]
// and sees that sequence's keys at positions k with k <= pos[t] and, when window > 0, pos[t] - k < window
// (transformers' sliding-window mask). Keys/values for every row must already be in the cache (WriteKv).
struct AttentionArgs {
  const float* q = nullptr;  // [T, n_heads, head_dim]
  float* out = nullptr;      // [T, n_heads, head_dim]
  int64_t T = 0;
  const int32_t* seqs = nullptr;  // [T] KV-cache sequence ids
  const int32_t* pos = nullptr;   // [T]
  int layer = 0;
  int n_heads = 0;
  int n_kv_heads = 0;  // GQA: head h reads kv head h / (n_heads / n_kv_heads)
  int head_dim = 0;
  float scale = 1.0f;  // applied to q.k before softmax
  int window = 0;      // 0: full causal attention
};

// Largest shapes the ops will see, so Reserve() can size scratch once.
struct ScratchSpec {
  int64_t max_rows = 1;     // T: tokens per forward call
  int64_t max_cols = 1;     // K: widest matmul input
  int64_t max_context = 1;  // longest sequence attention may read
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string Name() const = 0;
  virtual int threads() const = 0;

  virtual void Reserve(const ScratchSpec& spec) = 0;
  // A KV cache whose memory this backend reads in Attention().
  virtual std::unique_ptr<KvCache> CreateKvCache(const KvCacheConfig& config) = 0;

  // y[t, n] = sum_k x[t, k] * W[n, k] (+ bias[n] when bias is not null). x: [T, W.cols], y: [T, W.rows].
  virtual void MatMul(const float* x, int64_t T, const MatRef& w, const float* bias, float* y) = 0;
  // y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight for r < rows (y may alias x).
  virtual void RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       float* y) = 0;
  // In place on x: [T, heads, head_dim]; row t rotates by position pos[t].
  virtual void Rope(float* x, int64_t T, int heads, int head_dim, const int32_t* pos,
                    const RopeParams& rope) = 0;
  // k, v: [T, n_kv_heads * head_dim]; stored at (seqs[t], pos[t]) of `layer`. Positions must be reserved.
  virtual void WriteKv(KvCache& cache, int layer, int64_t T, const int32_t* seqs, const int32_t* pos,
                       const float* k, const float* v) = 0;
  virtual void Attention(KvCache& cache, const AttentionArgs& args) = 0;
  // out[i] = silu(gate[i]) * up[i]   (SwiGLU)
  virtual void SiluMul(const float* gate, const float* up, int64_t n, float* out) = 0;
  // out[i] = gelu_tanh(gate[i]) * up[i]
  virtual void GeluMul(const float* gate, const float* up, int64_t n, float* out) = 0;
  // y[i] += x[i]
  virtual void Add(float* y, const float* x, int64_t n) = 0;
  // In place, per row of n: x = exp(x - max) / sum(exp(x - max)).
  virtual void Softmax(float* x, int64_t rows, int64_t n) = 0;
  // out[t, :] = table[ids[t], :] for float or affine tables ([vocab, dim]).
  virtual void Embed(const MatRef& table, std::span<const int32_t> ids, float* out) = 0;
};

}  // namespace pensieve::backend
