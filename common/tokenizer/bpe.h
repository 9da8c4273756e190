// Byte-pair-encoding merges and the per-word result cache (internal to common/tokenizer).
#ifndef SWARR_COMMON_TOKENIZER_BPE_H_
#define SWARR_COMMON_TOKENIZER_BPE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace swarr {
namespace tokenizer_internal {

// The merge table of a BPE model: (left id, right id) -> (rank, merged id), looked up by the
// pair of ids packed into one 64-bit key.
//
// Merge semantics are HF tokenizers' (models/bpe/word.rs): repeatedly apply the pair of
// adjacent symbols with the lowest rank, the leftmost one among equal ranks, until no adjacent
// pair has a merge. A merge listed twice keeps the rank of its last occurrence (HF builds its
// map the same way).
//
// Thread safety: immutable after construction; Merge() is safe from any number of threads.
class BpeMerges {
 public:
  // Adds the merge of rank `rank`. REQUIRES: ids >= 0.
  void Add(int32_t left, int32_t right, int32_t merged, int32_t rank);
  size_t size() const { return rules_.size(); }

  // Merges `symbols` (ids, initially one per byte) in place.
  void Merge(std::vector<int32_t>* symbols) const;

  // The two algorithms Merge() picks between by length (short words: rank array rescanned per
  // merge, O(n^2) but cache friendly; long words: a heap over a linked list, O(n log n)).
  // Exposed so tests can check that they agree.
  void MergeByScanForTest(std::vector<int32_t>* symbols) const { MergeByScan(symbols); }
  void MergeByHeapForTest(std::vector<int32_t>* symbols) const { MergeByHeap(symbols); }

 private:
  struct Rule {
    int32_t rank;
    int32_t merged;
  };
  static uint64_t Key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  const Rule* Find(int32_t left, int32_t right) const {
    auto it = rules_.find(Key(left, right));
    return it == rules_.end() ? nullptr : &it->second;
  }
  void MergeByScan(std::vector<int32_t>* symbols) const;
  void MergeByHeap(std::vector<int32_t>* symbols) const;

  absl::flat_hash_map<uint64_t, Rule> rules_;
};

// A bounded cache of BPE results keyed by the pre-token's bytes.
//
// Thread safety: all methods may be called concurrently. The cache is split into shards by
// hash, each with its own mutex, so threads encoding different words rarely contend. When a
// shard reaches its share of `capacity` it is cleared (simple, bounded, and adapts to a change
// of corpus). Only words up to kMaxWordBytes are cached.
class BpeCache {
 public:
  static constexpr size_t kMaxWordBytes = 256;

  // capacity: total number of cached words; 0 disables the cache.
  explicit BpeCache(size_t capacity);

  // Appends the cached ids of `word` to *out and returns true, or returns false on a miss.
  bool Lookup(std::string_view word, std::vector<int64_t>* out) const;
  void Insert(std::string_view word, const std::vector<int32_t>& ids) const;

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, std::vector<int32_t>> map ABSL_GUARDED_BY(mu);
  };
  Shard& ShardOf(std::string_view word, size_t* hash) const;

  size_t per_shard_capacity_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace tokenizer_internal
}  // namespace swarr

#endif  // SWARR_COMMON_TOKENIZER_BPE_H_
