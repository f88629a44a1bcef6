#pragma once
// Launchers of the CUDA kernels (defined in the .cu files beside this), callable from plain C++. Every
// pointer is device memory; every launch goes on the given stream and returns at once.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>

#include "backend/backend.h"

namespace pensieve::backend::cuda {

// The step metadata in device memory, at fixed addresses for the life of the backend (recorded graphs read it).
struct StepView {
  const int32_t* header = nullptr;     // [0] rows T, [1] block-table stride, [2] attention tiles, [3] flash tiles
  const int32_t* tokens = nullptr;     // [T]
  const int32_t* pos = nullptr;        // [T]
  const int32_t* row_item = nullptr;   // [T] (-1: padding row)
  const int32_t* long_rope = nullptr;  // [T] 0/1
  const int32_t* logit_rows = nullptr; // [logit rows]
  const int32_t* tiles = nullptr;      // [tiles][2]: first row, rows (attention work units, one item each)
  const int32_t* flash_tiles = nullptr;  // [flash tiles][2]: the same for flash attention (prefill steps)
  const int32_t* tables = nullptr;     // [items][stride]
};

// The KV storage: [layer][block][K, V][kv_head][block_tokens][head_dim] of f32 or bf16. Its last block is the
// scratch block where padding rows keep their K/V (no block table names it).
struct KvView {
  void* data = nullptr;
  bool bf16 = false;
  int layers = 0;
  int64_t blocks = 0;  // including the scratch block
  int kv_heads = 0;
  int head_dim = 0;
  int block_tokens = 0;
};

// Whether kernels of a step may start while the one before them finishes (launch.cuh; default on).
void SetOverlappedLaunches(bool on);

// ---- matmuls
enum class Glu : int { kNone = 0, kSilu = 1, kGelu = 2 };
struct GemvOut {
  MatRef w;
  const float* bias = nullptr;
  float* y = nullptr;
};
constexpr int kMaxGemvOuts = 4;
constexpr int kMaxGemvRows = 8;  // T of one GEMV launch
// Whether the fast decode kernels read this weight (else the generic one does).
bool GemvFast(const MatRef& w);
// 4-bit weights the tensor-core decode kernel reads once relaid (gemv_tiled.cu): rows a multiple of 16,
// columns of 64, groups of 32, 64 or 128, 16-bit scales, aligned arrays, and not tiled yet.
bool CanTile(const MatRef& w);
// Rewrites w in place into the tiled order and sets w.tiled (enqueued on `stream`).
void LaunchRelayout(MatRef& w, cudaStream_t stream);
// One-time setup of the tiled kernels (their shared-memory limit), before any launch and outside capture.
void PrepareTiledKernels();
// Device scratch the tiled kernel needs for inputs up to max_cols wide (its B fragments and group sums).
int64_t TiledScratchBytes(int64_t max_cols);
struct GemvScratch {
  void* data = nullptr;
  int64_t bytes = 0;
};
// How a tiled launch runs. Its split of a row tile's columns over warps: force_split > 0 fixes the warps per
// tile (up to 16), else they are chosen so that the grid fills warp_slots (the warps the GPU holds at once) in
// one wave. x_prepared: LaunchNormPrepareX left x's fragments in the scratch (no preparing launch).
// stream: up to 4 rows go to the streaming kernel (gemv_stream.cu) where it applies (not with force_split), on
// at most min(sms, stream_blocks if > 0) blocks.
struct TiledLaunch {
  int warp_slots = 0;
  int force_split = 0;
  bool x_prepared = false;
  int sms = 0;
  bool stream = false;
  int stream_blocks = 0;
};
// y_i = x W_i^T (+ b_i) (or += when accumulate) for up to kMaxGemvOuts matrices of one format and width, T <=
// kMaxGemvRows rows of x. With glu != kNone: outs[0] is the gate, outs[1] the up projection (same shape), and
// glu_out = act(gate) * up; their y are ignored.
// Tiled weights (all outs tiled alike) go to LaunchGemvTiled, which uses `scratch` and `tiled`.
void LaunchGemv(const float* x, int T, std::span<const GemvOut> outs, bool accumulate, Glu glu, float* glu_out,
                GemvScratch scratch, TiledLaunch tiled, cudaStream_t stream);
void LaunchGemvTiled(const float* x, int T, std::span<const GemvOut> outs, bool accumulate, Glu glu, float* glu_out,
                     GemvScratch scratch, TiledLaunch tiled, cudaStream_t stream);
// LaunchRmsNorm of T <= kMaxGemvRows rows of width K that also leaves in `scratch` what the tiled kernel reads
// of y as its input, for weights of `group_size` (one launch instead of two); the same bits as the two apart.
// Where CanNormPrepareX: K a multiple of 64 and of the group size, and a row fits 48 KiB.
bool CanNormPrepareX(int T, int64_t K, int group_size);
void LaunchNormPrepareX(const float* x, const float* w, float eps, float* y, int T, int64_t K, int group_size,
                        GemvScratch scratch, cudaStream_t stream);
// Many-row matmuls on tiled weights (gemm_tiled.cu), the same contract as LaunchGemv for up to
// kMaxGemmTiledRows rows of x, with bf16-rounded operands as the expanding path below. `scratch` must hold at
// least GemmTiledScratchBytes(T, K, rows of all outputs); more lets the keys split so that the grid reaches
// target_blocks blocks.
constexpr int kMaxGemmTiledRows = 64;
int64_t GemmTiledScratchBytes(int T, int64_t K, int64_t rows);
void LaunchGemmTiled(const float* x, int T, std::span<const GemvOut> outs, bool accumulate, Glu glu, float* glu_out,
                     GemvScratch scratch, int target_blocks, cudaStream_t stream);
// The many-row path (dequant.cu): out[r - row0, :] = W[r, :] rounded to bf16 (stored as its 16 bits) for r in
// [row0, row0 + rows); tiled weights need row0 and rows multiples of 16.
void LaunchDequantBf16(const MatRef& w, int64_t row0, int64_t rows, uint16_t* out, cudaStream_t stream);
// out[i] = x[i] rounded to bf16, for i < n.
void LaunchToBf16(const float* x, int64_t n, uint16_t* out, cudaStream_t stream);
void LaunchBiasAdd(float* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);
void LaunchGluAct(Glu act, const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream);

// ---- rows
void LaunchEmbed(const MatRef& table, StepView step, int64_t T, float* out, cudaStream_t stream);
void LaunchRmsNorm(const float* x, const float* w, float eps, float* y, int64_t rows, int64_t dim, cudaStream_t stream);
void LaunchGatherRows(const float* x, int64_t cols, StepView step, int64_t n, float* out, cudaStream_t stream);

// Per-head q/k norm, rope, K/V into the storage (see QkvArgs).
struct PrepareArgs {
  float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* q_norm = nullptr;  // null: no q/k norm
  const float* k_norm = nullptr;
  float eps = 0;
  int layer = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int rotary_dim = 0;
  const float* inv_freq = nullptr;
  const float* inv_freq_long = nullptr;  // null: none
  float attention_factor = 1.0f;
};
void LaunchPrepareAttention(const PrepareArgs& a, StepView step, KvView kv, int64_t T, cudaStream_t stream);

struct AttentionLaunch {
  const float* q = nullptr;
  float* out = nullptr;
  int layer = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 1.0f;
  int window = 0;
  int tiles = 0;         // work units (host-known; the same tiles the step carries)
  int heads_per_tile = 0;
  int splits = 1;        // key-range splits per tile (> 1: partial results combined after)
  float* partial = nullptr;  // splits > 1: [splits][T][n_heads][head_dim + 2]
  int64_t T = 0;
};
constexpr int kMaxHeadDim = 256;
// One-time setup before any launch (and outside graph capture): kernel attributes such as the attention
// kernel's shared-memory limit.
void PrepareKernels();
void LaunchAttention(const AttentionLaunch& a, StepView step, KvView kv, cudaStream_t stream);
// Merges a.splits > 1 partial results into a.out (nothing for one split).
void LaunchCombine(const AttentionLaunch& a, cudaStream_t stream);

// Attention on tensor cores (flash_attention.cu) for the shapes FlashSupports accepts: bf16 KV, head sizes 64,
// 80, 96 or 128, a query-head group of at most 64 (16 for decode). Its work units are flash tiles: runs of at
// most FlashTileRows(group, decode) rows of one item (0: a group too large); a.tiles says how many the step
// carries. Prefill steps
// (decode false) take 64 (row, head) pairs per block and no splits; decode steps take 16 pairs per block, the
// four warps sharing each key tile, and a.splits key-range splits merged by LaunchCombine.
bool FlashSupports(int head_dim, int group, bool kv_bf16, bool decode);
int FlashTileRows(int group, bool decode);
void PrepareFlashKernels();
// Decode blocks of this head size resident on one multiprocessor at once (splits are sized to one wave).
int FlashDecodeResidentBlocks(int head_dim);
void LaunchFlashAttention(const AttentionLaunch& a, bool decode, StepView step, KvView kv, cudaStream_t stream);

// ---- sampling
struct SampleRowDev {
  int64_t logits_row = 0;
  double u = 0;
  float temperature = 0, top_p = 1, min_p = 0, repetition_penalty = 1;
  int32_t top_k = 0, top_logprobs = 0;
  int32_t adjust_begin = 0, adjust_count = 0;
  int64_t mask_offset = -1;  // into the mask bytes; -1: none
};
// Rows that are all plain greedy (temperature 0, no adjustments, mask or alternatives): a faster kernel.
// scratch: GreedyScratchBytes(capacity) for up to `capacity` rows, zero before the first launch (the kernel
// leaves its counters zero).
constexpr int64_t GreedyScratchBytes(int64_t capacity) { return capacity * 32 * 24 + capacity * 4; }
void LaunchGreedy(const float* logits, int64_t vocab, const SampleRowDev* rows, int n_rows, int64_t capacity,
                  void* scratch, SampleResult* results, cudaStream_t stream);
// One block per row; results[i] for rows[i]. work: [rows][vocab] floats of scratch.
void LaunchSample(const float* logits, int64_t vocab, const SampleRowDev* rows, int n_rows, const TokenAdjust* adjust,
                  const uint8_t* masks, float* work, SampleResult* results, cudaStream_t stream);

}  // namespace pensieve::backend::cuda
