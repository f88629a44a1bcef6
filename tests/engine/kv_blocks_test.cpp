// Block accounting of the paged KV cache (the engine's block manager): exact block ids, refcounts,
// copy-on-write, budget limits.
#include "engine/kv_blocks.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "util/error.h"

namespace pensieve::engine {
namespace {

// 10 blocks of 4 tokens, 4 sequences, 64 positions each.
KvBlocksConfig Small() { return KvBlocksConfig{4, 10, 4, 64}; }

std::vector<int32_t> Table(const KvBlockManager& c, int seq) {
  auto t = c.BlockTable(seq);
  return {t.begin(), t.end()};
}

// Appends, recording the copies the manager asks for.
struct Appender {
  KvBlockManager& c;
  std::vector<std::pair<int32_t, int32_t>> copies;
  void operator()(int seq, int64_t n) {
    c.Append(seq, n, [&](int32_t from, int32_t to) { copies.emplace_back(from, to); });
  }
};

TEST(KvBlocksTest, GrowsBlockByBlockWithoutMoving) {
  KvBlockManager c(Small());
  Appender append{c};
  EXPECT_EQ(c.total_blocks(), 10);
  EXPECT_EQ(c.free_blocks(), 10);
  EXPECT_EQ(c.max_blocks_per_sequence(), 16);
  int s = c.NewSequence();
  append(s, 1);
  EXPECT_EQ(Table(c, s), (std::vector<int32_t>{0}));
  append(s, 3);  // fills block 0 exactly
  EXPECT_EQ(Table(c, s), (std::vector<int32_t>{0}));
  append(s, 5);  // 9 tokens -> 3 blocks; block 0 stays where it is
  EXPECT_EQ(Table(c, s), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(c.Length(s), 9);
  EXPECT_EQ(c.free_blocks(), 7);
  EXPECT_TRUE(append.copies.empty());
}

TEST(KvBlocksTest, FreeReturnsBlocksAndRefusesOverBudget) {
  KvBlockManager c(Small());
  Appender append{c};
  int a = c.NewSequence(), b = c.NewSequence();
  append(a, 24);  // 6 blocks: 0..5
  EXPECT_TRUE(c.CanAppend(b, 16));
  EXPECT_FALSE(c.CanAppend(b, 17));
  EXPECT_THROW(append(b, 17), Error);
  EXPECT_EQ(c.Length(b), 0);  // failed append changes nothing
  append(b, 16);
  EXPECT_EQ(Table(c, b), (std::vector<int32_t>{6, 7, 8, 9}));
  EXPECT_EQ(c.free_blocks(), 0);
  c.Free(a);
  EXPECT_EQ(c.free_blocks(), 6);
  EXPECT_FALSE(c.IsLive(a));
  EXPECT_THROW(c.Length(a), Error);
  int d = c.NewSequence();
  append(d, 1);
  EXPECT_EQ(Table(c, d), (std::vector<int32_t>{5}));  // LIFO: the last freed block comes back first
}

TEST(KvBlocksTest, ForkSharesBlocksAndCopiesOnWrite) {
  KvBlockManager c(Small());
  Appender append{c};
  int a = c.NewSequence();
  append(a, 6);  // blocks 0 (full), 1 (2 of 4 used)
  int b = c.Fork(a, 6);
  EXPECT_EQ(Table(c, b), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(c.RefCount(0), 2);
  EXPECT_EQ(c.RefCount(1), 2);
  EXPECT_EQ(c.free_blocks(), 8);
  // b appends into the shared partial block 1: it gets a private copy (block 2, copied from 1); a keeps 1.
  append(b, 1);
  EXPECT_EQ(Table(c, b), (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(append.copies, (std::vector<std::pair<int32_t, int32_t>>{{1, 2}}));
  EXPECT_EQ(c.RefCount(1), 1);
  EXPECT_EQ(c.RefCount(2), 1);
  append(a, 1);  // a's block 1 is private now: no copy
  EXPECT_EQ(Table(c, a), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(append.copies.size(), 1u);
  // A fork of a block-aligned prefix shares only full blocks and needs no copy.
  int d = c.Fork(a, 4);
  EXPECT_EQ(Table(c, d), (std::vector<int32_t>{0}));
  EXPECT_EQ(c.RefCount(0), 3);
  append(d, 1);
  EXPECT_EQ(Table(c, d), (std::vector<int32_t>{0, 3}));
  EXPECT_EQ(append.copies.size(), 1u);
  c.Free(a);
  c.Free(b);
  EXPECT_EQ(c.RefCount(0), 1);
  c.Free(d);
  EXPECT_EQ(c.free_blocks(), 10);
}

TEST(KvBlocksTest, TruncateAndLimits) {
  KvBlockManager c(Small());
  Appender append{c};
  int a = c.NewSequence();
  append(a, 9);
  c.Truncate(a, 4);
  EXPECT_EQ(Table(c, a), (std::vector<int32_t>{0}));
  EXPECT_EQ(c.free_blocks(), 9);
  EXPECT_FALSE(c.CanAppend(a, 61));  // max_context 64
  for (int i = 0; i < 3; ++i) c.NewSequence();
  EXPECT_THROW(c.NewSequence(), Error);  // max_sequences 4
}

}  // namespace
}  // namespace pensieve::engine
