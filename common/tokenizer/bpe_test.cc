#include "common/tokenizer/bpe.h"

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace tokenizer_internal {
namespace {

using ::testing::ElementsAre;

TEST(BpeMergesTest, LowestRankFirst) {
  BpeMerges m;
  // ids: a=0 b=1 c=2 ab=3 bc=4 abc=5
  m.Add(1, 2, 4, 0);  // b c -> bc (rank 0)
  m.Add(0, 1, 3, 1);  // a b -> ab (rank 1)
  m.Add(3, 2, 5, 2);  // ab c -> abc
  std::vector<int32_t> s = {0, 1, 2};
  m.Merge(&s);
  EXPECT_THAT(s, ElementsAre(0, 4));  // bc wins, then (a, bc) has no merge
}

TEST(BpeMergesTest, LeftmostAmongEqualRanks) {
  BpeMerges m;
  m.Add(0, 0, 1, 0);  // a a -> aa
  m.Add(1, 1, 2, 1);  // aa aa -> aaaa
  for (auto merge : {&BpeMerges::MergeByScanForTest, &BpeMerges::MergeByHeapForTest}) {
    std::vector<int32_t> s = {0, 0, 0};
    (m.*merge)(&s);
    EXPECT_THAT(s, ElementsAre(1, 0));
    s = {0, 0, 0, 0, 0};
    (m.*merge)(&s);
    EXPECT_THAT(s, ElementsAre(2, 0));
  }
}

TEST(BpeMergesTest, LastDuplicateRankWins) {
  BpeMerges m;
  m.Add(0, 1, 3, 0);  // a b -> ab
  m.Add(1, 2, 4, 1);  // b c -> bc
  m.Add(0, 1, 3, 2);  // a b again, now rank 2
  std::vector<int32_t> s = {0, 1, 2};
  m.Merge(&s);
  EXPECT_THAT(s, ElementsAre(0, 4));
}

// The scan (short words) and heap (long words) algorithms agree on random merge tables.
TEST(BpeMergesTest, ScanAndHeapAgree) {
  std::mt19937 rng(7);
  for (int table = 0; table < 20; ++table) {
    const int32_t alphabet = 2 + static_cast<int32_t>(rng() % 4);
    BpeMerges m;
    int32_t next_id = alphabet;
    std::vector<int32_t> ids;
    for (int32_t i = 0; i < alphabet; ++i) ids.push_back(i);
    for (int32_t rank = 0; rank < 40; ++rank) {
      const int32_t l = ids[rng() % ids.size()], r = ids[rng() % ids.size()];
      m.Add(l, r, next_id, rank);
      ids.push_back(next_id++);
    }
    for (int word = 0; word < 50; ++word) {
      std::vector<int32_t> s(1 + rng() % 200);
      for (auto& x : s) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(alphabet));
      std::vector<int32_t> a = s, b = s;
      m.MergeByScanForTest(&a);
      m.MergeByHeapForTest(&b);
      ASSERT_EQ(a, b) << "table " << table << " word " << word;
    }
  }
}

TEST(BpeCacheTest, LookupInsertAndBound) {
  BpeCache cache(32);
  std::vector<int64_t> out;
  EXPECT_FALSE(cache.Lookup("hello", &out));
  cache.Insert("hello", {1, 2});
  EXPECT_TRUE(cache.Lookup("hello", &out));
  EXPECT_THAT(out, ElementsAre(1, 2));
  // Far more words than the capacity: stays correct (shards are cleared when full).
  for (int i = 0; i < 1000; ++i) cache.Insert("w" + std::to_string(i), {i});
  for (int i = 0; i < 1000; ++i) {
    out.clear();
    if (cache.Lookup("w" + std::to_string(i), &out)) {
      EXPECT_THAT(out, ElementsAre(i));
    }
  }
  // Long words are never cached; a zero capacity caches nothing.
  cache.Insert(std::string(BpeCache::kMaxWordBytes + 1, 'x'), {9});
  EXPECT_FALSE(cache.Lookup(std::string(BpeCache::kMaxWordBytes + 1, 'x'), &out));
  BpeCache off(0);
  off.Insert("a", {1});
  EXPECT_FALSE(off.Lookup("a", &out));
}

TEST(BpeCacheTest, ConcurrentUse) {
  BpeCache cache(64);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int64_t> out;
      for (int i = 0; i < 20000; ++i) {
        const int k = (i * 7 + t) % 300;
        const std::string w = "k" + std::to_string(k);
        out.clear();
        if (cache.Lookup(w, &out)) {
          if (out.size() != 1 || out[0] != k) ++wrong;
        } else {
          cache.Insert(w, {k});
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace tokenizer_internal
}  // namespace swarr
