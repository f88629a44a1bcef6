// Decode matmuls of up to 4 x rows over tiled 4-bit weights, each warp streaming its weights into its own ring
// of shared memory with asynchronous copies many stages ahead of the tiles it multiplies.
//
// Why: the register-batched kernel (gemv_tiled.cu) keeps at most two batches of tiles in flight per warp, and at
// 100-128 registers a multiprocessor holds ~16 warps: ~56 KB in flight per multiprocessor, too little to cover
// HBM latency under load (Nsight Compute on the gated MLP: DRAM at 39 % of peak, warps waiting on loads; it
// took 34 us where streaming the same bytes takes 15-16 us). Here a block of 16 warps fills a multiprocessor's
// shared memory: each warp keeps kStages - 1 stages in flight (~8 KB), and x's fragments are copied once per
// block. (A first version had one thread fill a block-wide ring with bulk copies (cp.async.bulk): the copies
// alone, with no arithmetic, moved the output layer's 296 MB at 2.2 TB/s, whatever the ring's depth.)
//
// Status: an experiment, off unless PENSIEVE_CUDA_STREAM=1. Correct, but slower than gemv_tiled.cu (H200,
// Llama-3-8B 4-bit, T = 1: lm_head 147 vs 104 us, gated MLP 39 vs 34 us). Nsight Compute on lm_head: DRAM no
// longer the limit, the warps are: 164 instructions per tile (the register-batched kernel: ~95), issue slots
// 62 % busy, stalls mostly on fixed-latency dependencies and the math pipes. Next: more tiles per stage (the
// copies' bookkeeping is per stage), fewer instructions per operand.
//
// Work: block b takes a contiguous run of units (row tiles of the outputs one after another; GLU: a row tile of
// the gate with the up projection's). A unit is read in chunks of kWarps * TPW column tiles (TPW tiles make a
// whole group); warp w copies and multiplies tiles w * TPW .. of every chunk, of each of the unit's NM
// matrices, with their scales and biases (the MMAs and scaling of gemv_tiled.cu), and at the unit's end the
// warps' sums are added in warp order through shared memory (the same bits on every run).
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/gemv_tiled.cuh"
#include "backend/cuda/launch.cuh"

namespace pensieve::backend::cuda {
namespace {

constexpr int kWarps = 16;
constexpr int kThreads = kWarps * 32;
constexpr uint32_t kTileBytes = kTileRows * kTileCols / 2;
int g_smem_optin = 0;  // the device's shared memory per block with opt-in (PrepareStreamKernels)

// Tiles per warp and chunk: whole groups, and for one matrix two tiles (so that as many bytes are in flight
// per stage as for the gated MLP's two).
__host__ __device__ constexpr int TilesPerWarp(int nm, int gs) {
  return gs > kTileCols ? gs / kTileCols : nm == 1 ? 2 : 1;
}
template <int NM, int GS>
struct Chunking {
  static constexpr int kTpw = TilesPerWarp(NM, GS);
  static constexpr int kTiles = kWarps * kTpw;                      // tiles per chunk
  static constexpr int kGroups = kTiles * kTileCols / GS;            // groups per chunk
  static constexpr int kWarpGroups = kGroups / kWarps;               // groups per warp and chunk (1 or 2)
};

// Byte offsets in shared memory: the warps' sums (two buffers of [kWarps][NM][16 rows][T]), x's fragments
// ([K/32 pairs][2T columns][4 lanes t] of 16 bytes), x's group sums ([T][groups]), then the warps' rings
// ([warp][stage]: NM x TPW tiles of codes, then NM scale and NM bias blocks of 32 bytes per group).
struct StreamLayout {
  uint32_t part, xs, xsum, ring, warp_stage, bytes;
};

struct StreamParams {
  TiledParams p;
  StreamLayout l;
  int chunks;  // per unit
};

template <int NM, int GS, bool F16, int kStages>
__global__ void __launch_bounds__(kThreads, 1) StreamKernel(const __grid_constant__ StreamParams sp) {
  using C = Chunking<NM, GS>;
  constexpr int MPG = GS / 16;                                   // MMAs per group
  constexpr uint32_t kCodes = NM * C::kTpw * kTileBytes;         // a warp's codes per stage
  constexpr uint32_t kGroupBytes = C::kWarpGroups * kTileRows * 2;  // its scales (or biases) per stage and matrix
  const TiledParams& p = sp.p;
  extern __shared__ __align__(128) uint8_t smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int chunks = sp.chunks;
  const int64_t u0 = p.total * blockIdx.x / gridDim.x, u1 = p.total * (blockIdx.x + 1) / gridDim.x;
  uint8_t* ring = smem + sp.l.ring + warp * kStages * sp.l.warp_stage;

  // The next stage to copy: chunk `ich` of unit `iu` into slot `islot`, from this warp's first tile of the
  // unit's rows in each matrix (a cursor, not an index: 64-bit division per stage cost more than the tiles'
  // arithmetic, Nsight Compute: 220 instructions per tile).
  int64_t iu = u0;
  int ich = 0, islot = 0;
  const uint4* codes[NM];
  const uint32_t* scales_at[NM];
  const uint32_t* biases_at[NM];
  const int kl0 = warp * C::kTpw;
  const auto enter = [&](int64_t unit) {
    const int m0 = NM == 1 ? OutputOf(p, unit) : 0;
#pragma unroll
    for (int i = 0; i < NM; ++i) {
      const int m = NM == 1 ? m0 : i;
      const TiledOut& o = OutAt(p, m);
      const int64_t lt = unit - (NM == 1 ? FirstTileOf(p, m) : 0);
      codes[i] = o.data + (lt * p.ktiles + kl0) * 32 + lane;
      scales_at[i] = o.scales + (lt * p.groups + kl0 * kTileCols / GS) * 8 + (lane & 7) * 4;
      biases_at[i] = o.biases ? o.biases + (lt * p.groups + kl0 * kTileCols / GS) * 8 + (lane & 7) * 4 : nullptr;
    }
  };
  if (u0 < u1) enter(u0);
  // This warp's tiles of the stage in each matrix (16 bytes a lane and tile) and their groups' scales and
  // biases (lanes 0.. and 8..: 16 bytes each); one copy group per stage, empty where the warp has no tiles in
  // the chunk or the block no stages left, so that group counting stays per stage.
  const auto issue = [&]() {
    if (iu < u1) {
      const int kt = ich * C::kTiles + kl0;  // this warp's first tile in the unit's rows
      if (kt < p.ktiles) {
        uint8_t* dst = ring + islot * sp.l.warp_stage;
        const int here = min(C::kTpw, p.ktiles - kt);  // the last chunk's last warp may have fewer
        const int piece = lane & 7;                    // 16-byte pieces of the groups' 32-byte blocks
        const bool group_lane = piece < 2 * max(1, here * kTileCols / GS);
#pragma unroll
        for (int i = 0; i < NM; ++i) {
#pragma unroll
          for (int tt = 0; tt < C::kTpw; ++tt)
            if (tt < here)
              CopyAsync16(dst + (i * C::kTpw + tt) * kTileBytes + lane * 16, codes[i] + (ich * C::kTiles + tt) * 32);
          const int64_t g0 = int64_t{ich} * C::kGroups * 8;
          if (group_lane) {
            if (lane < 8)
              CopyAsync16(dst + kCodes + i * kGroupBytes + piece * 16, scales_at[i] + g0);
            else if (lane < 16 && biases_at[i])
              CopyAsync16(dst + kCodes + (NM + i) * kGroupBytes + piece * 16, biases_at[i] + g0);
          }
        }
      }
      if (++ich == chunks) {
        ich = 0;
        if (++iu < u1) enter(iu);
      }
    }
    CommitAsync();
    islot = (islot + 1) % kStages;
  };

  for (int n = 0; n < kStages - 1; ++n) issue();  // weights only: before the previous kernel has ended
  WaitPrevious();  // x's fragments and sums come from the kernel before
  StartNext();
  // x's live fragments (columns 2T: hi and lo of each row; they lead each pair's 32 entries) and group sums.
  const int live = 8 * p.T;
  auto* xs = reinterpret_cast<uint4*>(smem + sp.l.xs);
  const auto* xb = reinterpret_cast<const uint4*>(p.xb);
  for (int e = threadIdx.x; e < p.ktiles * 2 * live; e += kThreads) xs[e] = xb[e / live * p.ncol * 4 + e % live];
  auto* xsum = reinterpret_cast<float*>(smem + sp.l.xsum);
  for (int e = threadIdx.x; e < p.T * p.groups; e += kThreads) xsum[e] = p.xsum[e];
  __syncthreads();

  const int g = lane >> 2, t = lane & 3;
  const bool live_col = g < 2 * p.T;
  auto* part = reinterpret_cast<float*>(smem + sp.l.part);
  const int part_buf = kWarps * NM * kTileRows * p.T;
  int slot = 0;  // of the stage multiplied next
  int buf = 0;
  for (int64_t unit = u0; unit < u1; ++unit) {
    const int m0 = NM == 1 ? OutputOf(p, unit) : 0;
    bool has_bias[NM];
    float acc[NM][2], c[NM][4];
#pragma unroll
    for (int i = 0; i < NM; ++i) {
      has_bias[i] = OutAt(p, NM == 1 ? m0 : i).biases != nullptr;
      acc[i][0] = acc[i][1] = c[i][0] = c[i][1] = c[i][2] = c[i][3] = 0.0f;
    }
    for (int ch = 0; ch < chunks; ++ch, slot = (slot + 1) % kStages) {
      __syncwarp();  // every lane is done with the slot that the next copies overwrite
      issue();       // kStages - 1 stages ahead
      WaitAsync<kStages - 1>();  // this lane's copies of this stage have landed
      __syncwarp();              // and every lane's
      if (ch * C::kTiles + kl0 >= p.ktiles) continue;
      const uint8_t* st = ring + slot * sp.l.warp_stage;
      const auto* scales = reinterpret_cast<const uint32_t*>(st + kCodes);
      const auto* biases = reinterpret_cast<const uint32_t*>(st + kCodes + NM * kGroupBytes);
#pragma unroll
      for (int tt = 0; tt < C::kTpw; ++tt) {
        const int kt = ch * C::kTiles + kl0 + tt;
        if (kt >= p.ktiles) break;  // groups end within a tile where a warp's tiles may run past K (GS <= 64)
        uint4 w[NM];
#pragma unroll
        for (int i = 0; i < NM; ++i) w[i] = *reinterpret_cast<const uint4*>(st + (i * C::kTpw + tt) * kTileBytes + lane * 16);
        uint4 bpair = make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int mm = 0; mm < 4; ++mm) {
          if (mm % 2 == 0 && live_col) bpair = xs[(kt * 2 + mm / 2) * live + g * 4 + t];
          const uint2 b = mm % 2 == 0 ? make_uint2(bpair.x, bpair.y) : make_uint2(bpair.z, bpair.w);
#pragma unroll
          for (int i = 0; i < NM; ++i) {
            const uint32_t word = mm == 0 ? w[i].x : mm == 1 ? w[i].y : mm == 2 ? w[i].z : w[i].w;
            uint32_t a[4];
            Operands(word, a);
            Mma(c[i], a, b);
          }
          if ((mm + 1) % (MPG < 4 ? MPG : 4) == 0 && (MPG <= 4 || tt == C::kTpw - 1)) {
            const int gw = (tt * kTileCols + (mm + 1) * 16) / GS - 1;  // the group, within the warp's
            const float xg = t < p.T ? xsum[t * p.groups + (kt - tt) * kTileCols / GS + gw] : 0.0f;
#pragma unroll
            for (int i = 0; i < NM; ++i)
              ScaleGroup<F16>(acc[i], c[i], scales[(i * C::kWarpGroups + gw) * 8 + g],
                              has_bias[i] ? biases[(i * C::kWarpGroups + gw) * 8 + g] : 0u, xg);
          }
        }
      }
    }
    // The unit's sums: [warp][matrix][row][x row] in one of two buffers (a warp may run on to the next unit
    // while others still add this one's), added in warp order.
    float* pb = part + buf * part_buf;
    if (t < p.T)
#pragma unroll
      for (int i = 0; i < NM; ++i) {
        pb[((warp * NM + i) * kTileRows + g) * p.T + t] = acc[i][0];
        pb[((warp * NM + i) * kTileRows + g + 8) * p.T + t] = acc[i][1];
      }
    __syncthreads();
    for (int e = threadIdx.x; e < kTileRows * p.T; e += kThreads) {
      const int r = e % kTileRows, tok = e / kTileRows;
      float v[NM];
#pragma unroll
      for (int i = 0; i < NM; ++i) {
        v[i] = pb[(i * kTileRows + r) * p.T + tok];
        for (int ww = 1; ww < kWarps; ++ww) v[i] += pb[((ww * NM + i) * kTileRows + r) * p.T + tok];
      }
      StoreTileRow<NM>(p, unit, r, tok, v);
    }
    buf ^= 1;
  }
}

uint32_t Align128(uint64_t n) { return static_cast<uint32_t>((n + 127) / 128 * 128); }

// The layout for NM matrices of group size gs, T x rows of width K and `stages` stages per warp (bytes beyond
// the device's limit where it does not fit).
StreamLayout LayoutFor(int nm, int gs, int T, int64_t K, int stages) {
  const int tpw = TilesPerWarp(nm, gs);
  StreamLayout l{};
  l.part = 0;
  l.xs = Align128(2ull * kWarps * nm * kTileRows * T * 4);
  l.xsum = Align128(l.xs + static_cast<uint64_t>(K) / 32 * 2 * T * 4 * 16);
  l.ring = Align128(l.xsum + uint64_t{4} * T * (K / gs));
  l.warp_stage = static_cast<uint32_t>(nm * tpw * kTileBytes + 2 * nm * (tpw * kTileCols / gs) * kTileRows * 2);
  l.bytes = l.ring + static_cast<uint32_t>(kWarps * stages) * l.warp_stage;
  return l;
}

constexpr int kDeep = 8, kShallow = 4;  // stages per warp: 7 or 3 in flight

template <int GS, bool F16>
void LaunchTyped(const StreamParams& sp, bool glu, bool deep, unsigned blocks, cudaStream_t stream) {
  const auto kernel = glu ? (deep ? StreamKernel<2, GS, F16, kDeep> : StreamKernel<2, GS, F16, kShallow>)
                          : (deep ? StreamKernel<1, GS, F16, kDeep> : StreamKernel<1, GS, F16, kShallow>);
  Launch(kernel, dim3(blocks), dim3(kThreads), sp.l.bytes, stream, sp);
}

template <int GS, bool F16>
void Allow() {
  for (auto kernel : {StreamKernel<1, GS, F16, kDeep>, StreamKernel<2, GS, F16, kDeep>, StreamKernel<1, GS, F16, kShallow>,
                      StreamKernel<2, GS, F16, kShallow>})
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, g_smem_optin);
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

void PrepareStreamKernels() {
  int device = 0, optin = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    cudaGetLastError();
    return;  // g_smem_optin stays 0: no launch fits
  }
  if (major < 8) return;  // cp.async
  g_smem_optin = optin;
  ForEveryGroupType([](auto gs, auto f16) { Allow<decltype(gs)::value, decltype(f16)::value>(); });
}

bool LaunchGemvStream(const TiledParams& p, bool glu, int sms, int blocks, cudaStream_t stream) {
  const int nm = glu ? 2 : 1;
  if (!(p.T >= 1 && p.T <= 4 && p.ncol == 8 && sms > 0)) return false;
  if (!(p.group_size == 32 || p.group_size == 64 || p.group_size == 128)) return false;
  for (int i = 0; i < (glu ? 2 : p.n_outs); ++i)
    if (!(Aligned16(p.outs[i].data) && Aligned16(p.outs[i].scales) && (!p.outs[i].biases || Aligned16(p.outs[i].biases))))
      return false;
  StreamParams sp{};
  sp.p = p;
  const int64_t K = int64_t{p.ktiles} * kTileCols;
  bool deep = true;
  sp.l = LayoutFor(nm, p.group_size, p.T, K, kDeep);
  if (sp.l.bytes > static_cast<uint32_t>(g_smem_optin)) {
    deep = false;
    sp.l = LayoutFor(nm, p.group_size, p.T, K, kShallow);
    if (sp.l.bytes > static_cast<uint32_t>(g_smem_optin)) return false;
  }
  sp.chunks = static_cast<int>(CeilDiv(p.ktiles, kWarps * TilesPerWarp(nm, p.group_size)));
  int64_t grid = std::min<int64_t>(p.total, sms);
  if (blocks > 0) grid = std::min<int64_t>(grid, blocks);
  WithGroupType(p.group_size, p.f16, [&](auto gs, auto f16) {
    LaunchTyped<decltype(gs)::value, decltype(f16)::value>(sp, glu, deep, static_cast<unsigned>(grid), stream);
  });
  return true;
}

}  // namespace pensieve::backend::cuda
