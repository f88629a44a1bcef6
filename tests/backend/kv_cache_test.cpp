// Block accounting of the paged KV cache: exact block ids, refcounts, copy-on-write, budget limits.
#include "backend/kv_cache.h"

#include <gtest/gtest.h>

#include <vector>

#include "util/error.h"

namespace pensieve::backend {
namespace {

// 10 blocks of 4 tokens; 1 layer, 1 kv head, head_dim 2 -> 4 * 2 * 2 floats = 64 bytes per block.
KvCacheConfig Small() { return KvCacheConfig{1, 1, 2, 4, 10 * 64, 4, 64}; }

std::vector<int32_t> Table(const KvCache& c, int seq) {
  auto t = c.BlockTable(seq);
  return {t.begin(), t.end()};
}

TEST(KvCacheTest, BudgetGivesBlocks) {
  KvCache c(Small());
  EXPECT_EQ(c.block_bytes(), 64);
  EXPECT_EQ(c.total_blocks(), 10);
  EXPECT_EQ(c.free_blocks(), 10);
}

TEST(KvCacheTest, GrowsBlockByBlockWithoutMoving) {
  KvCache c(Small());
  int s = c.NewSequence();
  c.Append(s, 1);
  EXPECT_EQ(Table(c, s), (std::vector<int32_t>{0}));
  c.Append(s, 3);  // fills block 0 exactly
  EXPECT_EQ(Table(c, s), (std::vector<int32_t>{0}));
  float* first = c.KeyAt(s, 0, 0);
  first[0] = 42.0f;
  c.Append(s, 5);  // 9 tokens -> 3 blocks
  EXPECT_EQ(Table(c, s), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(c.Length(s), 9);
  EXPECT_EQ(c.free_blocks(), 7);
  EXPECT_EQ(c.KeyAt(s, 0, 0), first);  // earlier data never moves
  EXPECT_EQ(*c.KeyAt(s, 0, 0), 42.0f);
  EXPECT_EQ(c.KeyAt(s, 0, 5), c.Keys(1, 0) + 1 * 2);
  EXPECT_EQ(c.ValueAt(s, 0, 5), c.Values(1, 0) + 1 * 2);
}

TEST(KvCacheTest, FreeReturnsBlocksAndRefusesOverBudget) {
  KvCache c(Small());
  int a = c.NewSequence(), b = c.NewSequence();
  c.Append(a, 24);  // 6 blocks: 0..5
  EXPECT_TRUE(c.CanAppend(b, 16));
  EXPECT_FALSE(c.CanAppend(b, 17));
  EXPECT_THROW(c.Append(b, 17), Error);
  EXPECT_EQ(c.Length(b), 0);  // failed append changes nothing
  c.Append(b, 16);
  EXPECT_EQ(Table(c, b), (std::vector<int32_t>{6, 7, 8, 9}));
  EXPECT_EQ(c.free_blocks(), 0);
  c.Free(a);
  EXPECT_EQ(c.free_blocks(), 6);
  EXPECT_FALSE(c.IsLive(a));
  EXPECT_THROW(c.Length(a), Error);
  int d = c.NewSequence();
  c.Append(d, 1);
  EXPECT_EQ(Table(c, d), (std::vector<int32_t>{5}));  // LIFO: the last freed block comes back first
}

TEST(KvCacheTest, ForkSharesBlocksAndCopiesOnWrite) {
  KvCache c(Small());
  int a = c.NewSequence();
  c.Append(a, 6);  // blocks 0 (full), 1 (2 of 4 used)
  for (int p = 0; p < 6; ++p) *c.KeyAt(a, 0, p) = static_cast<float>(p);
  int b = c.Fork(a, 6);
  EXPECT_EQ(Table(c, b), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(c.RefCount(0), 2);
  EXPECT_EQ(c.RefCount(1), 2);
  EXPECT_EQ(c.free_blocks(), 8);
  // b appends into the shared partial block 1: it gets a private copy (block 2); a keeps block 1.
  c.Append(b, 1);
  EXPECT_EQ(Table(c, b), (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(c.RefCount(1), 1);
  EXPECT_EQ(c.RefCount(2), 1);
  EXPECT_EQ(*c.KeyAt(b, 0, 5), 5.0f);  // copied contents
  *c.KeyAt(b, 0, 6) = 60.0f;
  c.Append(a, 1);  // a's block 1 is private now: no copy
  EXPECT_EQ(Table(c, a), (std::vector<int32_t>{0, 1}));
  *c.KeyAt(a, 0, 6) = 70.0f;
  EXPECT_EQ(*c.KeyAt(b, 0, 6), 60.0f);
  // A fork of a block-aligned prefix shares only full blocks and needs no copy.
  int d = c.Fork(a, 4);
  EXPECT_EQ(Table(c, d), (std::vector<int32_t>{0}));
  EXPECT_EQ(c.RefCount(0), 3);
  c.Append(d, 1);
  EXPECT_EQ(Table(c, d), (std::vector<int32_t>{0, 3}));
  c.Free(a);
  c.Free(b);
  EXPECT_EQ(c.RefCount(0), 1);
  c.Free(d);
  EXPECT_EQ(c.free_blocks(), 10);
}

TEST(KvCacheTest, TruncateAndLimits) {
  KvCache c(Small());
  int a = c.NewSequence();
  c.Append(a, 9);
  c.Truncate(a, 4);
  EXPECT_EQ(Table(c, a), (std::vector<int32_t>{0}));
  EXPECT_EQ(c.free_blocks(), 9);
  EXPECT_FALSE(c.CanAppend(a, 61));  // max_context 64
  for (int i = 0; i < 3; ++i) c.NewSequence();
  EXPECT_THROW(c.NewSequence(), Error);  // max_sequences 4
}

}  // namespace
}  // namespace pensieve::backend
