#pragma once
// The compute backend: the narrow set of ops the one decoder (src/model) calls without knowing where they run.
//
// Memory. A backend owns the memory its ops touch: weights, activations, KV storage and scratch. The model
// holds handles (Tensor, MatRef, KvStorage) whose addresses are in the backend's memory space (host memory for
// the cpu backend, device memory for cuda) and never dereferences them. Weights are copied into the backend
// once at load (model/upload.h), except where the backend computes on host memory (HostMemory(): the cpu
// backend reads the mapped files in place).
//
// Steps. A forward call runs as steps. SetStep(plan) hands the backend the step's per-row metadata (token ids,
// positions, which item and so which KV block table each row uses, the rows whose logits are wanted, the rows
// to sample); the ops that follow read it. RunStep(key, ops) runs the step's ops; a backend may record them
// the first time a key is seen and replay the recording afterwards (CUDA graphs), so everything that changes
// between two steps with the same key lives in the plan, never in op arguments.
//
// Conventions (all backends):
//  - Activations are f32, row-major, contiguous (Tensor).
//  - Weights stay in their stored format (MatRef): no op keeps a dequantized copy of a weight.
//  - Ops never allocate after Reserve(), except on the first replayable step of each key (the recording).
//  - Ops are called from one thread at a time (the engine thread); they may use the backend's own threads.
//  - Ops may complete asynchronously (cuda: in order on one stream). Download() and TakeSamples() return
//    complete results.
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "backend/sampling.h"
#include "util/function_ref.h"

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
//    With `tiled` (set only by a backend's Relayout) the same codes, scales and biases sit in that backend's
//    own order (the CUDA decode kernels' 16-row tiles: backend/cuda/gemv_tiled.cu; the CPU integer kernels'
//    16-row tiles: backend/cpu/matmul_int8.cpp).
// Addresses are in the memory of the backend the matrix is given to (see the file comment).
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
  bool tiled = false;
  // Set only with `tiled`, by the CPU backend's Relayout, for matrices whose every bias was -zero * scale
  // (llama.cpp's Q4_0/Q8_0 as affine groups): the biases are dropped and value = scale * q - zero * scale.
  int zero = 0;

  // Bytes of one row of `data` (kAffine: packed words only).
  int64_t RowBytes() const;
  // Bytes one full read of the matrix touches (weights + scales + biases): the cost of a decode matmul.
  int64_t TotalBytes() const;
  // Rows [begin, begin + count) as a view: how fused projections (Phi-3 qkv_proj, gate_up_proj) are split.
  MatRef RowSlice(int64_t begin, int64_t count) const;
  // Throws pensieve::Error (naming `what`) if the layout is not one the kernels support.
  void Validate(const std::string& what) const;
};

// f32 activations [rows, cols], row-major and contiguous, in backend memory. A view: not owned.
struct Tensor {
  float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;

  int64_t size() const { return rows * cols; }
  bool empty() const { return data == nullptr; }
  Tensor Rows(int64_t begin, int64_t count) const { return {data + begin * cols, count, cols}; }
  // The same memory as rows of `c` floats ([T, heads * head_dim] seen as [T * heads, head_dim]).
  Tensor Reshape(int64_t c) const { return {data, rows * cols / c, c}; }
};

// Memory allocated by a backend, released when the handle is destroyed (which must happen before the backend
// is destroyed).
class Buffer {
 public:
  virtual ~Buffer() = default;
  void* data() const { return data_; }
  int64_t bytes() const { return bytes_; }
  // The first `rows * cols` floats as a Tensor.
  Tensor AsTensor(int64_t rows, int64_t cols) const;

 protected:
  void* data_ = nullptr;
  int64_t bytes_ = 0;
};

// The KV storage: `blocks` blocks of `block_tokens` positions, each holding K and V of every layer. Which
// blocks belong to which sequence is decided by the engine (its block manager) and reaches the ops as the
// block tables of a StepPlan; the storage only stores.
struct KvLayout {
  int layers = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int block_tokens = 16;
  int64_t blocks = 0;
  int64_t kv_dim() const { return int64_t{kv_heads} * head_dim; }
};

class KvStorage {
 public:
  virtual ~KvStorage() = default;
  const KvLayout& layout() const { return layout_; }
  // Element type of the stored keys and values (f32 on the cpu; bf16 on cuda for models that are not f32).
  virtual FloatType type() const = 0;
  virtual int64_t bytes() const = 0;
  // Copies every layer's K and V of block `from` into block `to` (the copy half of copy-on-write).
  virtual void CopyBlock(int32_t from, int32_t to) = 0;

 protected:
  explicit KvStorage(const KvLayout& layout) : layout_(layout) {}
  KvLayout layout_;
};

// What the ops of one step work on, in host memory (valid until the next SetStep). The step's T rows are
// grouped by item (one sequence's run of new tokens): an item's rows are contiguous, in position order.
struct StepPlan {
  std::span<const int32_t> tokens;     // [T] token ids
  std::span<const int32_t> pos;        // [T] position of each row in its sequence
  std::span<const int32_t> row_item;   // [T] the row's item; -1: a padding row (see DecodeRows)
  std::span<const uint8_t> long_rope;  // [T] 1: longrope's long factors for this row; empty: short for all
  std::span<const int32_t> block_tables;  // [items, table_stride]: item i's KV blocks in position order
  int64_t table_stride = 0;
  std::span<const int32_t> logit_rows;    // rows whose final hidden state feeds the logits, ascending
  std::span<const SampleRow> samples;     // rows Sample() draws from (SampleRow::logits_row: a row of its input)
  int64_t T() const { return static_cast<int64_t>(tokens.size()); }
};

// Rotary embedding (HF "rotate_half" / NeoX layout: dim i pairs with i + rotary_dim/2). x[..., i] and
// x[..., i + half] rotate by angle pos * inv_freq[i] for i < half = rotary_dim / 2 (the angle formed in f32, as
// transformers does); dims past rotary_dim pass through (partial rotary). cos and sin are multiplied by
// attention_factor (transformers' `attention_scaling`: longrope, yarn; 1 otherwise). Rows whose long_rope flag
// is set use inv_freq_long.
struct RopeParams {
  int rotary_dim = 0;
  Tensor inv_freq;       // [1, rotary_dim / 2]
  Tensor inv_freq_long;  // [1, rotary_dim / 2], or empty
  float attention_factor = 1.0f;
};

// Before attention: per-head RMSNorm of q and k (Qwen3; skipped when the norm weights are empty), rope of q
// and k (q in place), then k and v stored in the KV storage at each row's position in its item's blocks.
struct QkvArgs {
  Tensor q;  // [T, n_heads * head_dim]
  Tensor k;  // [T, n_kv_heads * head_dim]
  Tensor v;  // [T, n_kv_heads * head_dim]
  Tensor q_norm, k_norm;  // [1, head_dim] or empty
  float eps = 1e-6f;
  int layer = 0;
  int n_heads = 0;
  int n_kv_heads = 0;  // GQA: head h uses kv head h / (n_heads / n_kv_heads)
  int head_dim = 0;
  RopeParams rope;
};

// Attention of the step's rows over the KV storage. Row t sees the keys of its item at positions k with
// k <= pos[t] and, when window > 0, pos[t] - k < window (transformers' sliding-window mask). Keys and values
// of every row must already be stored (PrepareAttention).
struct AttentionArgs {
  Tensor q;    // [T, n_heads * head_dim]
  Tensor out;  // [T, n_heads * head_dim]
  int layer = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  float scale = 1.0f;  // applied to q.k before softmax
  int window = 0;      // 0: full causal attention
};

// One output of MatMulMulti: y = x W^T (+ bias).
struct MatMulOut {
  MatRef w;
  Tensor bias;  // [1, w.rows] or empty
  Tensor y;
};

enum class GluActivation : uint8_t { kSilu, kGeluTanh };

// Largest shapes the ops will see, so Reserve() can size scratch once.
struct ScratchSpec {
  int64_t max_rows = 1;     // T: rows per step
  int64_t max_cols = 1;     // K: widest matmul input
  int64_t max_context = 1;  // longest sequence attention may read
  int64_t max_items = 1;    // items (block-table rows) per step
  int64_t max_samples = 1;  // rows sampled per step
  int64_t vocab = 1;        // width of the rows Sample() reads
  int64_t max_table_width = 1;  // block-table entries of the longest sequence
  int head_dim = 1;         // attention shape
  int gqa_group = 1;        // query heads per kv head
  int n_heads = 1;
};

// Device memory (cuda); zero for host backends.
struct MemoryInfo {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string Name() const = 0;
  virtual int threads() const = 0;

  // ---- memory
  // True when host addresses are backend addresses (the cpu backend): weights are used where they are mapped.
  virtual bool HostMemory() const = 0;
  virtual MemoryInfo Memory() const { return {}; }
  // Throws pensieve::Error naming `what`, the bytes asked for and the bytes free when the memory is not there.
  virtual std::unique_ptr<Buffer> Allocate(int64_t bytes, const std::string& what) = 0;
  // Host -> backend memory; complete before any later op reads `dst`.
  virtual void Upload(void* dst, const void* src, int64_t bytes) = 0;
  // A matrix already uploaded (or, on a host backend, as bound) may be rewritten into the order this backend's
  // kernels read fastest; `m.tiled` then says so. Either in place (same bytes, same addresses; returns null)
  // or into new backend memory that `m` then points into and that the caller keeps as long as `m` (returned).
  // Called once per distinct matrix; the default keeps the stored order.
  virtual std::unique_ptr<Buffer> Relayout(MatRef& m) {
    (void)m;
    return nullptr;
  }
  // Backend -> host memory, after every op issued so far; complete on return.
  virtual void Download(void* dst, const void* src, int64_t bytes) = 0;
  // The KV element type this backend uses for a preferred one (f32 or bf16; the host backends keep f32).
  virtual FloatType KvStorageType(FloatType preferred) const { return preferred; }
  // KV storage of `layout` with elements of KvStorageType(type).
  virtual std::unique_ptr<KvStorage> CreateKvStorage(const KvLayout& layout, FloatType type) = 0;
  // Bytes the backend keeps for itself at `spec` beyond what it is asked to Allocate (scratch, workspaces).
  virtual int64_t WorkspaceBytes(const ScratchSpec& spec) const { return 0; }
  virtual void Reserve(const ScratchSpec& spec) = 0;

  // ---- steps
  virtual void SetStep(const StepPlan& plan) = 0;
  // Whether RunStep may replay recordings; then DecodeRows(n) is the row count a step of n single-token items
  // is padded to (one recording per padded size), or 0 when such steps are not recorded. Padding rows have
  // row_item -1: they store their K/V in a scratch slot, attend only to it, and what they produce is ignored.
  virtual bool ReplaysSteps() const { return false; }
  virtual int64_t DecodeRows(int64_t n) const { return n; }
  // Runs ops() for the current step; with key != 0 a backend may replay an earlier recording of the same key
  // instead (the plan's sizes, and every op argument, must then be the same as when it was recorded).
  virtual void RunStep(uint64_t key, FunctionRef<void()> ops) { ops(); }

  // ---- ops (see the structs above)
  // out[t, :] = table[tokens[t], :] for float or affine tables ([vocab, dim]).
  virtual void Embed(const MatRef& table, Tensor out) = 0;
  // y = x W^T (+ bias), or y += x W^T (+ bias) when accumulate (the residual add). x: [T, W.cols], y: [T, W.rows];
  // y must not overlap x.
  virtual void MatMul(Tensor x, const MatRef& w, Tensor bias, Tensor y, bool accumulate) = 0;
  // Several matmuls of the same input (q/k/v) as one pass. Same results as MatMul for each.
  virtual void MatMulMulti(Tensor x, std::span<const MatMulOut> outs) = 0;
  // out = act(x Wg^T + bg) * (x Wu^T + bu): the gated MLP's first half.
  virtual void MatMulGlu(Tensor x, const MatRef& gate, Tensor gate_bias, const MatRef& up, Tensor up_bias,
                         GluActivation act, Tensor out) = 0;
  // y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight (y may alias x).
  virtual void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y) = 0;
  // RmsNorm, where y's next use (the very next op) is as the input of matmuls of weights like `next` (same
  // format and width): a backend may also lay y out there as they read it, in the same pass. Same results.
  virtual void RmsNormFor(Tensor x, Tensor weight, float eps, Tensor y, const MatRef& next) {
    (void)next;
    RmsNorm(x, weight, eps, y);
  }
  virtual void PrepareAttention(KvStorage& kv, const QkvArgs& args) = 0;
  virtual void Attention(KvStorage& kv, const AttentionArgs& args) = 0;
  // out[r, :] = x[logit_rows[r], :] for every logit row of the step.
  virtual void GatherLogitRows(Tensor x, Tensor out) = 0;
  // Draws the step's samples from rows of `logits` ([rows, vocab]).
  virtual void Sample(Tensor logits) = 0;
  // The results of the last Sample(), one per SampleRow of its step (waits for the step to finish).
  virtual void TakeSamples(std::span<SampleResult> out) = 0;
};

}  // namespace pensieve::backend
