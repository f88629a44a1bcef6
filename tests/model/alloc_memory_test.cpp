// Resource contracts of the decoder:
//  - a decode step (and a batched step of several sequences) allocates no heap memory (counted through a
//    replaced global operator new);
//  - resident memory after loading and running a bf16 / 4-bit model stays within 1.1 x weight files + KV pool
//    (weights are used in place from the mapped files; no dequantized or widened copies).
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "engine/sequences.h"
#include "model/model.h"
#include "random_model.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};
}  // namespace

void* operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, std::align_val_t a) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  size_t align = static_cast<size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace pensieve::model {
namespace {

int64_t CountAllocations(const std::function<void()>& f) {
  g_allocations = 0;
  g_counting = true;
  f();
  g_counting = false;
  return g_allocations.load();
}

TEST(AllocationTest, DecodeStepsAllocateNothing) {
  for (int bits : {0, 4}) {
    SCOPED_TRACE(bits ? "mlx4" : "bf16");
    auto dir = test::TempDir(bits ? "alloc_q4" : "alloc_bf16");
    test::RandomModelSpec s;
    s.dtype = DType::kBF16;
    s.quant_bits = bits;
    s.inter = 128;
    test::WriteRandomModel(dir, s);
    backend::cpu::CpuBackend cpu(2);
    LoadOptions o;
    o.kv_budget_bytes = 4 << 20;
    o.kv_block_tokens = 4;
    o.max_batch_tokens = 32;
    auto m = Model::Load(dir, cpu, o);
    engine::Sequences seqs(*m);
    const int64_t V = m->config().vocab_size;
    int a = seqs.New(), b = seqs.New();
    std::vector<int32_t> prompt = {1, 5, 9, 13, 17, 21};
    std::vector<float> logits(2 * V);
    using Item = engine::Sequences::Item;
    Item pa{a, prompt}, pb{b, prompt};
    seqs.Forward(std::span(&pa, 1), logits);
    seqs.Forward(std::span(&pb, 1), logits);
    int32_t ta = 7, tb = 8;
    Item one{a, std::span<const int32_t>(&ta, 1)};
    seqs.Forward(std::span(&one, 1), logits);  // warm-up: first decode sizes nothing new, but be fair
    // Many steps, crossing KV block boundaries (4 tokens per block) in both sequences; host logits and, as
    // the engine runs, sampling within the step.
    EXPECT_EQ(CountAllocations([&] {
                for (int i = 0; i < 9; ++i) seqs.Forward(std::span(&one, 1), logits);
              }),
              0);
    Item both[2] = {{a, std::span<const int32_t>(&ta, 1)}, {b, std::span<const int32_t>(&tb, 1)}};
    backend::SampleRow rows[2];
    rows[1].logits_row = 1;
    backend::SampleResult results[2];
    EXPECT_EQ(CountAllocations([&] {
                for (int i = 0; i < 9; ++i) seqs.Forward(both, rows, results);
              }),
              0);
    EXPECT_EQ(seqs.Length(a), 6 + 1 + 9 + 9);
  }
}

int64_t RssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

TEST(MemoryTest, ResidentMemoryBoundedByWeightFilesPlusKvPool) {
  for (int bits : {0, 4}) {
    SCOPED_TRACE(bits ? "mlx4" : "bf16");
    // ~50 MB of bf16 weights (enough that the 10% slack is not eaten by the process itself).
    auto dir = test::TempDir(bits ? "rss_q4" : "rss_bf16");
    test::RandomModelSpec s;
    s.dtype = DType::kBF16;
    s.quant_bits = bits;
    s.group_size = 64;
    s.hidden = 512, s.inter = 1536, s.layers = 6, s.heads = 8, s.kv_heads = 4, s.head_dim = 64, s.vocab = 8192;
    const uint64_t file_bytes = test::WriteRandomModel(dir, s);
    // Drop the writer's page cache footprint from this process's view: measure from here. The writer's freed
    // heap goes back to the system first, or the CPU backend's weight tiles (mlx4) would reuse it unseen.
    ::malloc_trim(0);
    const int64_t before = RssBytes();
    backend::cpu::CpuBackend cpu(2);
    LoadOptions o;
    o.kv_budget_bytes = 8 << 20;
    o.max_batch_tokens = 64;
    auto m = Model::Load(dir, cpu, o);
    std::vector<int32_t> prompt(48);
    for (int i = 0; i < 48; ++i) prompt[i] = (i * 131) % s.vocab;
    engine::Sequences seqs(*m);
    const int seq = seqs.New();
    std::vector<float> logits(s.vocab);
    engine::Sequences::Item it{seq, prompt};
    seqs.Forward(std::span(&it, 1), logits);  // touches every weight
    const int64_t grown = RssBytes() - before;
    const double limit = 1.1 * file_bytes + m->kv_pool_bytes();
    std::printf("[ memory   ] %s: weights %.1f MB, kv pool %.1f MB, RSS growth %.1f MB (limit %.1f MB)\n",
                bits ? "mlx4" : "bf16", file_bytes / 1e6, m->kv_pool_bytes() / 1e6, grown / 1e6, limit / 1e6);
    EXPECT_LE(grown, limit);
    EXPECT_GE(grown, static_cast<int64_t>(0.5 * file_bytes));  // the weights really were read (mapped in)
    m.reset();
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace pensieve::model
