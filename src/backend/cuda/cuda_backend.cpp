#include "backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <dlfcn.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "backend/cuda/kernels.h"
#include "util/error.h"

namespace pensieve::backend::cuda {
namespace {

void Check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("cuda: ") + what + ": " + cudaGetErrorString(e));
}
void Check(cublasStatus_t e, const char* what) {
  if (e != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cublas: ") + what + ": status " + std::to_string(int(e)));
}

// Whether the environment variable `name` is "0" ("1"): the A/B switches below turn a default-on path off (or
// an experimental one on).
bool Switched(const char* name, const char* to) {
  const char* v = std::getenv(name);
  return v && std::string(v) == to;
}
bool SwitchedOff(const char* name) { return Switched(name, "0"); }

std::string GiB(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(int64_t{1} << 30));
  return buf;
}

int64_t Align(int64_t n, int64_t a = 256) { return (n + a - 1) / a * a; }

// Weights, activations and workspaces: plain device allocations (never managed memory).
class DeviceBuffer final : public Buffer {
 public:
  DeviceBuffer(void* p, int64_t bytes, int64_t* counter) : counter_(counter) {
    data_ = p;
    bytes_ = bytes;
  }
  ~DeviceBuffer() override {
    cudaFree(data_);
    *counter_ -= bytes_;
  }

 private:
  int64_t* counter_;
};

// Pinned host memory.
struct Pinned {
  void* p = nullptr;
  int64_t bytes = 0;
  void Resize(int64_t n) {
    if (n <= bytes) return;
    if (p) cudaFreeHost(p);
    Check(cudaMallocHost(&p, static_cast<size_t>(n)), "pinned host memory");
    bytes = n;
  }
  ~Pinned() {
    if (p) cudaFreeHost(p);
  }
};

class CudaKv final : public KvStorage {
 public:
  CudaKv(const KvLayout& layout, bool bf16, void* data, int64_t bytes, cudaStream_t stream, int64_t* counter)
      : KvStorage(layout), bf16_(bf16), bytes_(bytes), stream_(stream), counter_(counter) {
    view_.data = data;
    view_.bf16 = bf16;
    view_.layers = layout.layers;
    view_.blocks = layout.blocks + 1;  // + the scratch block of padding rows
    view_.kv_heads = layout.kv_heads;
    view_.head_dim = layout.head_dim;
    view_.block_tokens = layout.block_tokens;
  }
  ~CudaKv() override {
    cudaFree(view_.data);
    *counter_ -= bytes_;
  }
  FloatType type() const override { return bf16_ ? FloatType::kBF16 : FloatType::kF32; }
  int64_t bytes() const override { return bytes_; }
  void CopyBlock(int32_t from, int32_t to) override {
    // Per layer, a block's K and V are contiguous: one strided copy over the layers.
    const int64_t block = BlockBytes();
    auto* base = static_cast<char*>(view_.data);
    const size_t pitch = static_cast<size_t>(view_.blocks * block);
    Check(cudaMemcpy2DAsync(base + to * block, pitch, base + from * block, pitch, static_cast<size_t>(block),
                            static_cast<size_t>(view_.layers), cudaMemcpyDeviceToDevice, stream_),
          "kv block copy");
  }
  const KvView& view() const { return view_; }

 private:
  int64_t BlockBytes() const {
    return int64_t{2} * view_.kv_heads * view_.block_tokens * view_.head_dim * (bf16_ ? 2 : 4);
  }
  KvView view_;
  bool bf16_;
  int64_t bytes_;
  cudaStream_t stream_;
  int64_t* counter_;
};

bool SameFormat(const MatRef& a, const MatRef& b) {
  return a.kind == b.kind && a.type == b.type && a.cols == b.cols &&
         (a.kind == MatRef::Kind::kFloat || (a.bits == b.bits && a.group_size == b.group_size)) &&
         GemvFast(a) == GemvFast(b) && a.tiled == b.tiled;
}

constexpr int64_t kSlabBytes = int64_t{64} << 20;  // bf16 rows of one weight for the many-row path (default)
constexpr int64_t kCublasWorkspace = int64_t{32} << 20;
constexpr int kMaxSplits = 64;         // key-range splits per attention tile
constexpr int64_t kMaxSplitRows = 64;  // steps of more rows attend in one pass per tile
constexpr int64_t kSplitSlots = 1024;  // splits x rows the partial-result buffer holds
constexpr int kUploadChunk = 64 << 20;
constexpr int kTilePairs = 16;          // (row, head) pairs per attention tile (attention.cu)

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaOptions& o) : options_(o) {
    Check(cudaSetDevice(o.device), "select device");
    cudaDeviceProp prop{};
    Check(cudaGetDeviceProperties(&prop, o.device), "device properties");
    name_ = prop.name;
    sms_ = prop.multiProcessorCount;
    cc_ = std::to_string(prop.major) + std::to_string(prop.minor);
    Check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream");
    // PENSIEVE_CUDA_GRAPHS=0 runs every step unrecorded (for narrowing down a problem; slower).
    graphs_enabled_ = !SwitchedOff("PENSIEVE_CUDA_GRAPHS");
    // PENSIEVE_CUDA_TILED=0 keeps 4-bit weights in their stored order (the SIMT decode kernel reads them).
    tiling_enabled_ = !SwitchedOff("PENSIEVE_CUDA_TILED");
    // PENSIEVE_CUDA_FLASH=0 leaves attention to the SIMT kernel (for comparisons).
    flash_enabled_ = !SwitchedOff("PENSIEVE_CUDA_FLASH");
    // PENSIEVE_CUDA_SLAB_MIB sets the many-row path's bf16 slab (for measurements; 1 to 1024).
    if (const char* slab = std::getenv("PENSIEVE_CUDA_SLAB_MIB")) slab_bytes_ = int64_t{std::clamp(std::atoi(slab), 1, 1024)} << 20;
    // PENSIEVE_CUDA_MANY_TILED sets the most rows the many-row tiled kernel takes (0 to 64; 0: none, so every
    // step of more than 16 rows expands its weights to bf16 for cuBLAS; for measurements).
    if (const char* many = std::getenv("PENSIEVE_CUDA_MANY_TILED"))
      many_tiled_rows_ = std::clamp(std::atoi(many), 0, kMaxGemmTiledRows);
    // PENSIEVE_CUDA_GEMV_ROWS: steps of up to this many rows (0 to 16) keep tiled weights on the decode kernel,
    // whose sums are exact in f32; more go to the many-row kernel (bf16 operands, faster from 9 rows on).
    if (const char* gemv = std::getenv("PENSIEVE_CUDA_GEMV_ROWS")) gemv_rows_ = std::clamp(std::atoi(gemv), 0, 16);
    // PENSIEVE_CUDA_TILED_SPLIT (1 to 16) fixes the warps per row tile of the tiled decode kernel (default:
    // chosen per matmul; for measurements).
    if (const char* split = std::getenv("PENSIEVE_CUDA_TILED_SPLIT")) tiled_split_ = std::clamp(std::atoi(split), 0, 16);
    // PENSIEVE_CUDA_FUSED_NORM=0 keeps a decode step's norms and the tiled kernel's input layout two launches.
    fused_norm_ = !SwitchedOff("PENSIEVE_CUDA_FUSED_NORM");
    // PENSIEVE_CUDA_STREAM=1 sends decode matmuls of up to 4 rows to the streaming kernel (gemv_stream.cu), an
    // experiment: it is correct but still slower than the register-batched one (bench/RESULTS_cuda.md);
    // PENSIEVE_CUDA_STREAM_BLOCKS=n caps its grid (tests: one block then cycles its ring many times).
    stream_kernel_ = Switched("PENSIEVE_CUDA_STREAM", "1");
    if (const char* blocks = std::getenv("PENSIEVE_CUDA_STREAM_BLOCKS")) stream_blocks_ = std::max(0, std::atoi(blocks));
    // PENSIEVE_CUDA_PDL=0 starts each kernel of a step only when the one before has finished (launch.cuh).
    SetOverlappedLaunches(!SwitchedOff("PENSIEVE_CUDA_PDL"));
    Check(cublasCreate(&cublas_), "create handle");
    Check(cublasSetStream(cublas_, stream_), "set stream");
    Check(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH), "math mode");  // f32 products stay f32 (no TF32)
    for (auto& e : staging_done_) Check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event");
    for (auto& e : step_done_) Check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event");
  }

  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
    for (auto& e : staging_done_) cudaEventDestroy(e);
    for (auto& e : step_done_) cudaEventDestroy(e);
    workspace_.reset();
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  std::string Name() const override { return "cuda (" + name_ + ", sm_" + cc_ + ", " + std::to_string(sms_) + " SMs)"; }
  int threads() const override { return 1; }

  // ---- memory
  bool HostMemory() const override { return false; }

  MemoryInfo Memory() const override {
    size_t free = 0, total = 0;
    Check(cudaMemGetInfo(&free, &total), "memory info");
    MemoryInfo m{static_cast<int64_t>(free), static_cast<int64_t>(total)};
    if (options_.memory_limit > 0) {
      m.total_bytes = std::min(m.total_bytes, options_.memory_limit);
      m.free_bytes = std::max<int64_t>(0, std::min(m.free_bytes, options_.memory_limit - allocated_));
    }
    return m;
  }

  void* Malloc(int64_t bytes, const std::string& what) {
    const MemoryInfo m = Memory();
    if (bytes > m.free_bytes)
      throw Error(what + ": needs " + GiB(bytes) + " of GPU memory, " + GiB(m.free_bytes) + " of " +
                  GiB(m.total_bytes) + " are free on " + name_);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, static_cast<size_t>(std::max<int64_t>(bytes, 1)));
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw Error(what + ": cannot allocate " + GiB(bytes) + " of GPU memory (" + GiB(Memory().free_bytes) +
                  " free): " + cudaGetErrorString(e));
    }
    allocated_ += bytes;
    return p;
  }

  std::unique_ptr<Buffer> Allocate(int64_t bytes, const std::string& what) override {
    void* p = Malloc(bytes, what);
    return std::make_unique<DeviceBuffer>(p, bytes, &allocated_);
  }

  void Upload(void* dst, const void* src, int64_t bytes) override {
    // Through two pinned staging buffers: the copy from (possibly mapped) host memory into one overlaps the
    // transfer of the other.
    for (auto& s : staging_) s.Resize(kUploadChunk);
    for (int64_t done = 0; done < bytes;) {
      const int64_t n = std::min<int64_t>(kUploadChunk, bytes - done);
      const int i = staging_next_;
      staging_next_ ^= 1;
      Check(cudaEventSynchronize(staging_done_[i]), "upload wait");
      std::memcpy(staging_[i].p, static_cast<const char*>(src) + done, static_cast<size_t>(n));
      Check(cudaMemcpyAsync(static_cast<char*>(dst) + done, staging_[i].p, static_cast<size_t>(n),
                            cudaMemcpyHostToDevice, stream_),
            "upload");
      Check(cudaEventRecord(staging_done_[i], stream_), "upload event");
      done += n;
    }
  }

  std::unique_ptr<Buffer> Relayout(MatRef& m) override {
    if (!tiling_enabled_ || !CanTile(m)) return nullptr;
    LaunchRelayout(m, stream_);
    Check(cudaStreamSynchronize(stream_), "relayout");
    return nullptr;  // in place
  }

  void Download(void* dst, const void* src, int64_t bytes) override {
    Check(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, stream_), "download");
    Check(cudaStreamSynchronize(stream_), "step");
  }

  std::unique_ptr<KvStorage> CreateKvStorage(const KvLayout& layout, FloatType type) override {
    const bool bf16 = type != FloatType::kF32;
    const int64_t block = int64_t{layout.layers} * 2 * layout.kv_heads * layout.block_tokens * layout.head_dim * (bf16 ? 2 : 4);
    const int64_t bytes = (layout.blocks + 1) * block;
    void* p = Malloc(bytes, "KV cache");
    return std::make_unique<CudaKv>(layout, bf16, p, bytes, stream_, &allocated_);
  }

  // Step metadata layout (int32 units), fixed at Reserve: header, per-row arrays, logit rows, tiles, block
  // tables, sample rows; then the growable per-token adjustments.
  struct StepLayout {
    int64_t rows = 0, logit_rows = 0, tables = 0, samples = 0;
    int64_t o_tokens, o_pos, o_item, o_long, o_logit, o_tiles, o_flash, o_tables, o_samples, o_adjust;
    int64_t adjust_capacity = 0;  // entries
    int64_t Bytes() const { return o_adjust * 4 + adjust_capacity * int64_t{sizeof(TokenAdjust)}; }
  };

  StepLayout LayoutFor(const ScratchSpec& s, int64_t adjust_capacity) const {
    StepLayout l;
    l.rows = std::max<int64_t>(s.max_rows, 64);
    l.logit_rows = std::max(l.rows, s.max_samples);
    l.tables = s.max_items * s.max_table_width;
    l.samples = std::max<int64_t>(s.max_samples, 1);
    int64_t o = 16;
    l.o_tokens = o, o += l.rows;
    l.o_pos = o, o += l.rows;
    l.o_item = o, o += l.rows;
    l.o_long = o, o += l.rows;
    l.o_logit = o, o += l.logit_rows;
    l.o_tiles = o, o += 2 * l.rows;
    l.o_flash = o, o += 2 * l.rows;
    l.o_tables = o, o += Align(l.tables, 4);
    l.o_samples = o, o += l.samples * static_cast<int64_t>(sizeof(SampleRowDev) / 4);
    l.o_adjust = Align(o, 4);
    l.adjust_capacity = adjust_capacity;
    return l;
  }

  // The workspace's parts in their order: one computation for the size query and the allocation.
  struct WorkspacePlan {
    int64_t step, sample, result, slab, cublas, x16, glu, split, greedy, tiled;
    int64_t Total() const { return step + sample + result + slab + cublas + x16 + glu + split + greedy + tiled; }
  };
  WorkspacePlan PlanFor(const ScratchSpec& s, const StepLayout& l) const {
    WorkspacePlan w;
    w.step = Align(l.Bytes());
    w.sample = Align(s.max_samples * s.vocab * 4);                    // sampler rows
    w.result = Align(s.max_samples * int64_t{sizeof(SampleResult)});  // results
    w.slab = slab_bytes_;                                              // many-row matmuls: a weight's bf16 slab,
    w.cublas = kCublasWorkspace;                                       // cuBLAS,
    w.x16 = Align(s.max_rows * s.max_cols * 2);                        // the input in bf16,
    w.glu = 2 * Align(s.max_rows * s.max_cols * 4);                    // the gate/up halves
    w.split = Align(kSplitSlots * s.n_heads * (s.head_dim + 2) * 4);   // attention splits
    w.greedy = Align(GreedyScratchBytes(l.samples));                   // greedy sampling
    w.tiled = Align(TiledScratchBytes(s.max_cols));                    // tiled decode matmuls
    return w;
  }

  int64_t WorkspaceBytes(const ScratchSpec& s) const override { return PlanFor(s, LayoutFor(s, 4096)).Total(); }

  void Reserve(const ScratchSpec& s) override {
    if (!(s.head_dim <= kMaxHeadDim))
      throw Error("cuda: head_dim " + std::to_string(s.head_dim) + " is larger than the " +
                  std::to_string(kMaxHeadDim) + " the attention kernel supports");
    spec_ = s;
    PrepareKernels();
    PrepareFlashKernels();
    PrepareTiledKernels();
    layout_ = LayoutFor(s, 4096);
    const WorkspacePlan w = PlanFor(s, layout_);
    ClearGraphs();
    workspace_.reset();
    workspace_ = Allocate(w.Total(), "workspace");
    char* p = static_cast<char*>(workspace_->data());
    step_dev_ = p, p += w.step;
    sample_work_ = reinterpret_cast<float*>(p), p += w.sample;
    results_dev_ = reinterpret_cast<SampleResult*>(p), p += w.result;
    slab_ = reinterpret_cast<uint16_t*>(p), p += w.slab;
    Check(cublasSetWorkspace(cublas_, p, static_cast<size_t>(w.cublas)), "workspace");
    p += w.cublas;
    x16_ = reinterpret_cast<uint16_t*>(p), p += w.x16;
    glu_gate_ = reinterpret_cast<float*>(p);
    glu_up_ = reinterpret_cast<float*>(p + w.glu / 2);
    p += w.glu;
    partial_ = reinterpret_cast<float*>(p), p += w.split;
    greedy_scratch_ = p, p += w.greedy;
    gemv_scratch_ = {p, w.tiled};
    Check(cudaMemsetAsync(greedy_scratch_, 0, static_cast<size_t>(w.greedy), stream_), "greedy scratch");
    for (auto& h : step_host_) h.Resize(layout_.Bytes());
    results_host_.Resize(w.result);
    SetView();
  }

  // ---- steps
  void SetStep(const StepPlan& plan) override {
    if (!step_dev_) throw Error("cuda: SetStep before Reserve");
    const int64_t T = plan.T();
    int64_t adjust = 0, masked = 0;
    for (const SampleRow& r : plan.samples) {
      adjust += static_cast<int64_t>(r.adjust.size());
      masked += r.allowed.empty() ? 0 : 1;
    }
    if (!(T <= layout_.rows && static_cast<int64_t>(plan.logit_rows.size()) <= layout_.logit_rows &&
          static_cast<int64_t>(plan.samples.size()) <= layout_.samples &&
          static_cast<int64_t>(plan.block_tables.size()) <= layout_.tables))
      throw Error("cuda: step larger than reserved");
    if (adjust > layout_.adjust_capacity) GrowAdjust(adjust);
    if (masked > 0) GrowMasks(masked * spec_.vocab);

    const int i = step_next_;
    step_next_ ^= 1;
    Check(cudaEventSynchronize(step_done_[i]), "step upload wait");
    auto* h = static_cast<int32_t*>(step_host_[i].p);
    // Attention work units: runs of rows of one item, in pieces of at most `most` rows (the SIMT kernel: as
    // many rows as fit kTilePairs pairs; flash attention: FlashTileRows of a prefill or a decode step).
    const auto tile = [&](int64_t most, int64_t offset) {
      int64_t n = 0;
      for (int64_t t0 = 0; t0 < T; ++n) {
        int64_t t1 = t0 + 1;
        // Padding rows (item -1) are tiles of their own, so a padded step always has as many tiles as rows.
        while (t1 < T && t1 - t0 < most && plan.row_item[t0] >= 0 && plan.row_item[t1] == plan.row_item[t0]) ++t1;
        h[offset + 2 * n] = static_cast<int32_t>(t0);
        h[offset + 2 * n + 1] = static_cast<int32_t>(t1 - t0);
        t0 = t1;
      }
      return n;
    };
    const int64_t tiles = tile(std::max(1, kTilePairs / std::min(spec_.gqa_group, kTilePairs)), layout_.o_tiles);
    const int flash_rows = flash_enabled_ ? FlashTileRows(spec_.gqa_group, T <= kMaxSplitRows) : 0;
    const int64_t flash_tiles = flash_rows > 0 ? tile(flash_rows, layout_.o_flash) : 0;
    h[0] = static_cast<int32_t>(T);
    h[1] = static_cast<int32_t>(plan.table_stride);
    h[2] = static_cast<int32_t>(tiles);
    h[3] = static_cast<int32_t>(flash_tiles);
    std::copy(plan.tokens.begin(), plan.tokens.end(), h + layout_.o_tokens);
    std::copy(plan.pos.begin(), plan.pos.end(), h + layout_.o_pos);
    std::copy(plan.row_item.begin(), plan.row_item.end(), h + layout_.o_item);
    for (int64_t t = 0; t < T; ++t) h[layout_.o_long + t] = plan.long_rope.empty() ? 0 : plan.long_rope[t];
    std::copy(plan.logit_rows.begin(), plan.logit_rows.end(), h + layout_.o_logit);
    std::copy(plan.block_tables.begin(), plan.block_tables.end(), h + layout_.o_tables);
    auto* rows = reinterpret_cast<SampleRowDev*>(h + layout_.o_samples);
    auto* adj = reinterpret_cast<TokenAdjust*>(h + layout_.o_adjust);
    auto* mask_host = static_cast<uint8_t*>(masks_host_.p);
    int64_t a = 0, m = 0;
    simple_greedy_ = !plan.samples.empty();
    for (size_t k = 0; k < plan.samples.size(); ++k) {
      const SampleRow& r = plan.samples[k];
      simple_greedy_ = simple_greedy_ && r.params.temperature == 0.0f && r.adjust.empty() && r.allowed.empty() &&
                       r.params.top_logprobs == 0;
      SampleRowDev& d = rows[k];
      d.logits_row = r.logits_row;
      d.u = r.u;
      d.temperature = r.params.temperature;
      d.top_p = r.params.top_p;
      d.min_p = r.params.min_p;
      d.repetition_penalty = r.params.repetition_penalty;
      d.top_k = r.params.top_k;
      d.top_logprobs = std::min(r.params.top_logprobs, kMaxTopLogprobs);
      d.adjust_begin = static_cast<int32_t>(a);
      d.adjust_count = static_cast<int32_t>(r.adjust.size());
      std::copy(r.adjust.begin(), r.adjust.end(), adj + a);
      a += static_cast<int64_t>(r.adjust.size());
      d.mask_offset = -1;
      if (!r.allowed.empty()) {
        if (!(static_cast<int64_t>(r.allowed.size()) == spec_.vocab)) throw Error("cuda: sample mask size differs from the vocabulary");
        std::memcpy(mask_host + m * spec_.vocab, r.allowed.data(), static_cast<size_t>(spec_.vocab));
        d.mask_offset = m * spec_.vocab;
        ++m;
      }
    }
    // Only what is used: the rows, tiles and the used part of the block tables; the sample rows with their
    // adjustments; the masks when there are any.
    const int64_t head = (layout_.o_tables + static_cast<int64_t>(plan.block_tables.size())) * 4;
    const int64_t tail_begin = layout_.o_samples * 4;
    const int64_t tail_end = layout_.o_adjust * 4 + a * int64_t{sizeof(TokenAdjust)};
    Check(cudaMemcpyAsync(step_dev_, h, static_cast<size_t>(head), cudaMemcpyHostToDevice, stream_), "step upload");
    if (!plan.samples.empty())
      Check(cudaMemcpyAsync(static_cast<char*>(step_dev_) + tail_begin, reinterpret_cast<char*>(h) + tail_begin,
                            static_cast<size_t>(tail_end - tail_begin), cudaMemcpyHostToDevice, stream_),
            "sample upload");
    if (m > 0)
      Check(cudaMemcpyAsync(masks_dev_, mask_host, static_cast<size_t>(m * spec_.vocab), cudaMemcpyHostToDevice, stream_),
            "mask upload");
    Check(cudaEventRecord(step_done_[i], stream_), "step event");
    if (m > 0) Check(cudaStreamSynchronize(stream_), "mask upload");  // masks_host_ is a single buffer
    T_ = T;
    tiles_ = tiles;
    flash_tiles_ = flash_tiles;
    logit_rows_ = static_cast<int64_t>(plan.logit_rows.size());
    samples_ = static_cast<int64_t>(plan.samples.size());
  }

  bool ReplaysSteps() const override { return true; }
  int64_t DecodeRows(int64_t n) const override {
    if (n > kMaxSplitRows) return 0;
    int64_t p = 1;
    while (p < n) p *= 2;
    return p;
  }

  void RunStep(uint64_t key, FunctionRef<void()> ops) override {
    if (key == 0 || !graphs_enabled_) return ops();
    key = key * 2 + (simple_greedy_ ? 1 : 0);  // the recorded sampler differs
    if (uncapturable_.count(key)) return ops();
    auto it = graphs_.find(key);
    if (it != graphs_.end()) {
      Check(cudaGraphLaunch(it->second, stream_), "graph launch");
      return;
    }
    Check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
    try {
      ops();
    } catch (...) {
      cudaGraph_t g = nullptr;
      cudaStreamEndCapture(stream_, &g);
      if (g) cudaGraphDestroy(g);
      cudaGetLastError();
      throw;
    }
    cudaGraph_t graph = nullptr;
    Check(cudaStreamEndCapture(stream_, &graph), "end capture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {  // run this kind of step unrecorded from now on
      cudaGetLastError();
      uncapturable_[key] = true;
      return ops();
    }
    graphs_[key] = exec;
    Check(cudaGraphLaunch(exec, stream_), "graph launch");
  }

  // ---- ops
  void Embed(const MatRef& table, Tensor out) override {
    LaunchEmbed(table, view_, T_, out.data, stream_);
    Post("embed");
  }

  void MatMul(Tensor x, const MatRef& w, Tensor bias, Tensor y, bool accumulate) override {
    const GemvOut o{w, bias.empty() ? nullptr : bias.data, y.data};
    Products(x, std::span(&o, 1), accumulate, Glu::kNone, nullptr);
  }

  void MatMulMulti(Tensor x, std::span<const MatMulOut> outs) override {
    GemvOut o[kMaxGemvOuts];
    for (size_t i = 0; i < outs.size();) {
      size_t j = i + 1;
      while (j < outs.size() && j - i < kMaxGemvOuts && SameFormat(outs[i].w, outs[j].w)) ++j;
      for (size_t k = i; k < j; ++k)
        o[k - i] = {outs[k].w, outs[k].bias.empty() ? nullptr : outs[k].bias.data, outs[k].y.data};
      Products(x, std::span<const GemvOut>(o, j - i), false, Glu::kNone, nullptr);
      i = j;
    }
  }

  void MatMulGlu(Tensor x, const MatRef& gate, Tensor gate_bias, const MatRef& up, Tensor up_bias, GluActivation act,
                 Tensor out) override {
    const Glu g = act == GluActivation::kSilu ? Glu::kSilu : Glu::kGelu;
    const GemvOut o[2] = {{gate, gate_bias.empty() ? nullptr : gate_bias.data, nullptr},
                          {up, up_bias.empty() ? nullptr : up_bias.data, nullptr}};
    if ((x.rows <= kGemvChunkRows * 2 || ManyTiled(x.rows, o)) && SameFormat(gate, up))
      return Products(x, o, false, g, out.data);
    // Many rows: both halves through cuBLAS into scratch, then the activation.
    const Tensor gt{glu_gate_, x.rows, gate.rows}, ut{glu_up_, x.rows, up.rows};
    const uint16_t* x16 = Bf16Input(x, o);
    ManyRows(x, x16, gate, o[0].bias, gt.data, false);
    ManyRows(x, x16, up, o[1].bias, ut.data, false);
    LaunchGluAct(g, gt.data, ut.data, out.size(), out.data, stream_);
    Post("glu");
  }

  void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y) override {
    LaunchRmsNorm(x.data, weight.data, eps, y.data, x.rows, x.cols, stream_);
    Post("rmsnorm");
  }

  // A decode step's norm before tiled matmuls also lays y out as their kernel reads it: the next Products of y
  // (and only the very next op) skips its preparing launch.
  void RmsNormFor(Tensor x, Tensor weight, float eps, Tensor y, const MatRef& next) override {
    const int64_t T = x.rows;
    if (!(fused_norm_ && next.tiled && next.cols == x.cols && T <= gemv_rows_ && T <= kGemvChunkRows &&
          CanNormPrepareX(static_cast<int>(T), x.cols, next.group_size)))
      return RmsNorm(x, weight, eps, y);
    LaunchNormPrepareX(x.data, weight.data, eps, y.data, static_cast<int>(T), x.cols, next.group_size, gemv_scratch_,
                       stream_);
    Post("rmsnorm");
    prepared_ = {y.data, T, x.cols, next.group_size};
  }

  void PrepareAttention(KvStorage& kv, const QkvArgs& a) override {
    PrepareArgs p;
    p.q = a.q.data, p.k = a.k.data, p.v = a.v.data;
    p.q_norm = a.q_norm.empty() ? nullptr : a.q_norm.data;
    p.k_norm = a.k_norm.empty() ? nullptr : a.k_norm.data;
    p.eps = a.eps;
    p.layer = a.layer, p.n_heads = a.n_heads, p.n_kv_heads = a.n_kv_heads, p.head_dim = a.head_dim;
    p.rotary_dim = a.rope.rotary_dim;
    p.inv_freq = a.rope.inv_freq.data;
    p.inv_freq_long = a.rope.inv_freq_long.empty() ? nullptr : a.rope.inv_freq_long.data;
    p.attention_factor = a.rope.attention_factor;
    LaunchPrepareAttention(p, view_, static_cast<const CudaKv&>(kv).view(), T_, stream_);
    Post("prepare attention");
  }

  void Attention(KvStorage& kv, const AttentionArgs& args) override {
    AttentionLaunch a;
    a.q = args.q.data;
    a.out = args.out.data;
    a.layer = args.layer, a.n_heads = args.n_heads, a.n_kv_heads = args.n_kv_heads, a.head_dim = args.head_dim;
    a.scale = args.scale;
    a.window = args.window;
    a.T = T_;
    const KvView& view = static_cast<const CudaKv&>(kv).view();
    const int group = args.n_heads / args.n_kv_heads;
    // Few blocks (decode): room to split each tile's keys so that every multiprocessor has work at long
    // contexts (the kernels use as many splits as the current length fills).
    const bool decode = T_ <= kMaxSplitRows;
    // Decode: enough splits to fill one wave of resident blocks (a second, partial wave would double the time).
    const int64_t most = std::min<int64_t>(kMaxSplits, kSplitSlots / std::max<int64_t>(T_, 1));
    const auto splits_for = [&](int64_t blocks, int64_t resident_per_sm) {
      return decode ? static_cast<int>(std::clamp<int64_t>(resident_per_sm * sms_ / blocks, 1, most)) : 1;
    };
    a.partial = partial_;
    // The step's flash tiles hold FlashTileRows(spec_.gqa_group) rows: as many as fit this layer's group too.
    if (flash_tiles_ > 0 && FlashSupports(args.head_dim, group, view.bf16, decode) &&
        FlashTileRows(spec_.gqa_group, decode) <= FlashTileRows(group, decode)) {
      a.tiles = static_cast<int>(flash_tiles_);
      a.splits = splits_for(flash_tiles_ * args.n_kv_heads, FlashDecodeResidentBlocks(args.head_dim));
      LaunchFlashAttention(a, decode, view_, view, stream_);
      Post("flash attention");
      return;
    }
    a.tiles = static_cast<int>(tiles_);
    a.heads_per_tile = std::min(group, kTilePairs);
    a.splits = splits_for(tiles_ * args.n_kv_heads * ((group + a.heads_per_tile - 1) / a.heads_per_tile), 4);
    LaunchAttention(a, view_, view, stream_);
    Post("attention");
  }

  void GatherLogitRows(Tensor x, Tensor out) override {
    LaunchGatherRows(x.data, x.cols, view_, logit_rows_, out.data, stream_);
    Post("gather");
  }

  void Sample(Tensor logits) override {
    if (!(logits.cols == spec_.vocab)) throw Error("cuda: sampling a row of the wrong width");
    if (simple_greedy_) {
      LaunchGreedy(logits.data, logits.cols, sample_rows_, static_cast<int>(samples_), layout_.samples, greedy_scratch_,
                   results_dev_, stream_);
    } else {
      LaunchSample(logits.data, logits.cols, sample_rows_, static_cast<int>(samples_), adjust_dev_, masks_dev_,
                   sample_work_, results_dev_, stream_);
    }
    Post("sample");
  }

  void TakeSamples(std::span<SampleResult> out) override {
    if (!(static_cast<int64_t>(out.size()) >= samples_)) throw Error("sample: result buffer too small");
    Check(cudaMemcpyAsync(results_host_.p, results_dev_, static_cast<size_t>(samples_) * sizeof(SampleResult),
                          cudaMemcpyDeviceToHost, stream_),
          "results");
    Check(cudaStreamSynchronize(stream_), "step");
    std::memcpy(out.data(), results_host_.p, static_cast<size_t>(samples_) * sizeof(SampleResult));
  }

 private:
  static constexpr int64_t kGemvChunkRows = kMaxGemvRows;

  // After every op: launch errors surface at once (outside recordings; inside, the capture reports them), and
  // what RmsNormFor prepared is stale.
  void Post(const char* what) {
    prepared_ = {};
    cudaStreamCaptureStatus st;
    cudaStreamIsCapturing(stream_, &st);
    if (st == cudaStreamCaptureStatusNone) Check(cudaGetLastError(), what);
  }

  // y = x W^T for each output: the decode kernel for up to 16 rows (in launches of 8; tiled weights: up to
  // gemv_rows_), the many-row tiled kernel for tiled weights up to 64 rows, cuBLAS beyond.
  void Products(Tensor x, std::span<const GemvOut> outs, bool accumulate, Glu glu, float* glu_out) {
    const int64_t T = x.rows;
    if (T <= 2 * kGemvChunkRows && !(T > gemv_rows_ && ManyTiled(T, outs))) {
      const MatRef& w = outs[0].w;
      const bool prepared = prepared_.x == x.data && prepared_.T == T && prepared_.K == x.cols && w.tiled &&
                            prepared_.group_size == w.group_size;
      GemvOut o[kMaxGemvOuts];
      for (int64_t t0 = 0; t0 < T; t0 += kGemvChunkRows) {
        const int n = static_cast<int>(std::min(kGemvChunkRows, T - t0));
        for (size_t i = 0; i < outs.size(); ++i) {
          o[i] = outs[i];
          if (o[i].y) o[i].y += t0 * outs[i].w.rows;
        }
        LaunchGemv(x.data + t0 * x.cols, n, std::span<const GemvOut>(o, outs.size()), accumulate, glu,
                   glu_out ? glu_out + t0 * outs[0].w.rows : nullptr, gemv_scratch_,
                   {16 * sms_, tiled_split_, prepared, sms_, stream_kernel_, stream_blocks_}, stream_);
      }
      Post("gemv");
      return;
    }
    if (ManyTiled(T, outs)) {
      LaunchGemmTiled(x.data, static_cast<int>(T), outs, accumulate, glu, glu_out, {slab_, slab_bytes_}, 2 * sms_,
                      stream_);
      Post("gemm tiled");
      return;
    }
    const uint16_t* x16 = Bf16Input(x, outs);
    for (const GemvOut& o : outs) ManyRows(x, x16, o.w, o.bias, o.y, accumulate);
  }

  // Whether T rows go through the many-row tiled kernel: tiled weights, up to many_tiled_rows_ rows, and the
  // slab (which that kernel uses instead) holds its sums.
  bool ManyTiled(int64_t T, std::span<const GemvOut> outs) const {
    if (T > many_tiled_rows_ || !outs[0].w.tiled) return false;
    int64_t rows = 0;
    for (const GemvOut& o : outs) rows += o.w.rows;
    return GemmTiledScratchBytes(static_cast<int>(T), outs[0].w.cols, rows) <= slab_bytes_;
  }

  static bool F32(const MatRef& w) { return w.kind == MatRef::Kind::kFloat && w.type == FloatType::kF32; }

  // x rounded to bf16 in x16_ when some weight of `outs` is not f32 (once for all of them), else null.
  const uint16_t* Bf16Input(Tensor x, std::span<const GemvOut> outs) {
    if (std::all_of(outs.begin(), outs.end(), [](const GemvOut& o) { return F32(o.w); })) return nullptr;
    LaunchToBf16(x.data, x.size(), x16_, stream_);
    return x16_;
  }

  // y[T, N] (=|+=) x[T, K] W[N, K]^T (+ bias) through cuBLAS: f32 weights in f32, every other format on tensor
  // cores from bf16 operands (x16: x in bf16) with f32 sums; bf16 weights are read in place, the others are
  // expanded to bf16 a slab of rows at a time (a multiple of 16 rows: tiled weights expand whole tiles).
  void ManyRows(Tensor x, const uint16_t* x16, const MatRef& w, const float* bias, float* y, bool accumulate) {
    const int64_t T = x.rows, K = w.cols, N = w.rows;
    const float one = 1.0f, zero = 0.0f;
    const float* beta = accumulate ? &one : &zero;
    if (F32(w)) {
      Check(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(T), static_cast<int>(K),
                        &one, static_cast<const float*>(w.data), static_cast<int>(K), x.data, static_cast<int>(x.cols),
                        beta, y, static_cast<int>(N)),
            "sgemm");
    } else {
      const bool direct = w.kind == MatRef::Kind::kFloat && w.type == FloatType::kBF16;
      const int64_t slab = direct ? N : std::max<int64_t>(16, slab_bytes_ / 2 / K / 16 * 16);
      for (int64_t r0 = 0; r0 < N; r0 += slab) {
        const int64_t n = std::min(slab, N - r0);
        const uint16_t* a = static_cast<const uint16_t*>(w.data) + r0 * K;
        if (!direct) {
          LaunchDequantBf16(w, r0, n, slab_, stream_);
          a = slab_;
        }
        Check(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(T),
                           static_cast<int>(K), &one, a, CUDA_R_16BF, static_cast<int>(K), x16, CUDA_R_16BF,
                           static_cast<int>(K), beta, y + r0, CUDA_R_32F, static_cast<int>(N), CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT),
              "gemm");
      }
    }
    if (bias) LaunchBiasAdd(y, bias, T, N, stream_);
    Post("matmul");
  }

  void SetView() {
    auto* base = static_cast<int32_t*>(step_dev_);
    view_.header = base;
    view_.tokens = base + layout_.o_tokens;
    view_.pos = base + layout_.o_pos;
    view_.row_item = base + layout_.o_item;
    view_.long_rope = base + layout_.o_long;
    view_.logit_rows = base + layout_.o_logit;
    view_.tiles = base + layout_.o_tiles;
    view_.flash_tiles = base + layout_.o_flash;
    view_.tables = base + layout_.o_tables;
    sample_rows_ = reinterpret_cast<const SampleRowDev*>(base + layout_.o_samples);
    adjust_dev_ = reinterpret_cast<const TokenAdjust*>(base + layout_.o_adjust);
  }

  // Recorded steps hold the old addresses: growing a buffer forgets them.
  void GrowAdjust(int64_t entries) {
    Check(cudaStreamSynchronize(stream_), "grow");
    ClearGraphs();
    layout_ = LayoutFor(spec_, std::max(entries, 2 * layout_.adjust_capacity));
    step_buf_.reset();
    step_buf_ = Allocate(layout_.Bytes(), "sampling adjustments");
    step_dev_ = step_buf_->data();  // the first step region inside workspace_ stays unused
    for (auto& h : step_host_) h.Resize(layout_.Bytes());
    SetView();
  }

  void GrowMasks(int64_t bytes) {
    if (bytes <= masks_bytes_) return;
    Check(cudaStreamSynchronize(stream_), "grow");
    ClearGraphs();
    masks_buf_.reset();
    masks_buf_ = Allocate(bytes, "sampling masks");
    masks_dev_ = static_cast<uint8_t*>(masks_buf_->data());
    masks_bytes_ = bytes;
    masks_host_.Resize(bytes);
  }

  void ClearGraphs() {
    for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
    graphs_.clear();
  }

  CudaOptions options_;
  std::string name_, cc_;
  int sms_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int64_t allocated_ = 0;

  Pinned staging_[2];
  cudaEvent_t staging_done_[2] = {};
  int staging_next_ = 0;

  ScratchSpec spec_;
  StepLayout layout_;
  std::unique_ptr<Buffer> workspace_, step_buf_, masks_buf_;
  void* step_dev_ = nullptr;
  Pinned step_host_[2];
  cudaEvent_t step_done_[2] = {};
  int step_next_ = 0;
  StepView view_;
  const SampleRowDev* sample_rows_ = nullptr;
  const TokenAdjust* adjust_dev_ = nullptr;
  uint8_t* masks_dev_ = nullptr;
  int64_t masks_bytes_ = 0;
  Pinned masks_host_;
  float* sample_work_ = nullptr;
  SampleResult* results_dev_ = nullptr;
  Pinned results_host_;
  uint16_t* slab_ = nullptr;  // bf16 bits
  uint16_t* x16_ = nullptr;
  float* glu_gate_ = nullptr;
  float* glu_up_ = nullptr;
  float* partial_ = nullptr;
  void* greedy_scratch_ = nullptr;
  bool simple_greedy_ = false;  // every sample of the step is plain greedy (the fast kernel)

  int64_t T_ = 0, tiles_ = 0, flash_tiles_ = 0, logit_rows_ = 0, samples_ = 0;
  std::map<uint64_t, cudaGraphExec_t> graphs_;
  std::map<uint64_t, bool> uncapturable_;
  bool graphs_enabled_ = true;
  bool tiling_enabled_ = true;
  bool flash_enabled_ = true;
  GemvScratch gemv_scratch_;
  int tiled_split_ = 0;
  bool fused_norm_ = true;
  bool stream_kernel_ = false;
  int stream_blocks_ = 0;
  struct Prepared {  // rows whose tiled-kernel input RmsNormFor left in gemv_scratch_
    const float* x = nullptr;
    int64_t T = 0, K = 0;
    int group_size = 0;
  } prepared_;
  int64_t slab_bytes_ = kSlabBytes;
  int many_tiled_rows_ = kMaxGemmTiledRows;
  int gemv_rows_ = kGemvChunkRows;
};

}  // namespace

GpuStatus Probe(int device) {
  GpuStatus s;
  // Without the driver's library the runtime only reports a version mismatch: say what is really missing.
  if (void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(driver);
  } else {
    s.reason = "no NVIDIA driver on this machine (libcuda.so.1 cannot be loaded)";
    return s;
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    s.reason = std::string("no usable NVIDIA GPU (") + cudaGetErrorString(e) + ")";
    return s;
  }
  if (count <= device) {
    s.reason = count == 0 ? "no NVIDIA GPU found" : "GPU " + std::to_string(device) + " not found (" + std::to_string(count) + " present)";
    return s;
  }
  cudaDeviceProp prop{};
  if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess) {
    s.reason = std::string("cannot query GPU: ") + cudaGetErrorString(e);
    return s;
  }
  s.name = prop.name;
  s.sm_major = prop.major, s.sm_minor = prop.minor;
  s.multiprocessors = prop.multiProcessorCount;
  if (prop.major < 8) {
    s.reason = s.name + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
               ") is older than the sm_80 this build supports";
    return s;
  }
  if (cudaSetDevice(device) == cudaSuccess) {
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) s.free_bytes = static_cast<int64_t>(free), s.total_bytes = static_cast<int64_t>(total);
  }
  cudaGetLastError();
  s.usable = true;
  return s;
}

std::unique_ptr<Backend> MakeCudaBackend(const CudaOptions& options) {
  const GpuStatus s = Probe(options.device);
  if (!s.usable) throw Error("--device cuda: " + s.reason);
  return std::make_unique<CudaBackend>(options);
}

double MeasureCopyBandwidth(int64_t bytes, int repeats) {
  void *a = nullptr, *b = nullptr;
  Check(cudaMalloc(&a, static_cast<size_t>(bytes)), "bandwidth buffer");
  Check(cudaMalloc(&b, static_cast<size_t>(bytes)), "bandwidth buffer");
  cudaMemset(a, 1, static_cast<size_t>(bytes));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  double best = 0;
  for (int i = 0; i < repeats + 1; ++i) {
    cudaEventRecord(e0);
    cudaMemcpyAsync(b, a, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i > 0) best = std::max(best, 2.0 * bytes / (ms * 1e-3));  // first copy warms up
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  return best;
}

}  // namespace pensieve::backend::cuda
