#include "common/tokenizer/bpe.h"

#include <algorithm>
#include <climits>
#include <queue>

#include "absl/hash/hash.h"
#include "common/tokenizer/unicode.h"

namespace swarr {
namespace tokenizer_internal {
namespace {

// Words up to this many symbols use the scan algorithm.
constexpr size_t kScanMaxSymbols = 64;

}  // namespace

void BpeMerges::Add(int32_t left, int32_t right, int32_t merged, int32_t rank) {
  rules_[Key(left, right)] = Rule{rank, merged};
}

void BpeMerges::Merge(std::vector<int32_t>* symbols) const {
  if (symbols->size() < 2) return;
  if (symbols->size() <= kScanMaxSymbols) {
    MergeByScan(symbols);
  } else {
    MergeByHeap(symbols);
  }
}

void BpeMerges::MergeByScan(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& sym = *symbols;
  size_t n = sym.size();
  if (n < 2) return;
  // rank[i] / merged[i]: the merge of the pair (sym[i], sym[i + 1]), INT32_MAX if none.
  std::vector<int32_t> rank(n - 1), merged(n - 1);
  auto fill = [&](size_t i) {
    const Rule* r = Find(sym[i], sym[i + 1]);
    rank[i] = r ? r->rank : INT32_MAX;
    merged[i] = r ? r->merged : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) fill(i);
  while (n >= 2) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i) {
      if (rank[i] < rank[best]) best = i;
    }
    if (rank[best] == INT32_MAX) break;
    sym[best] = merged[best];
    sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    rank.erase(rank.begin() + static_cast<std::ptrdiff_t>(best));
    merged.erase(merged.begin() + static_cast<std::ptrdiff_t>(best));
    --n;
    if (best > 0) fill(best - 1);
    if (best + 1 < n) fill(best);
  }
}

void BpeMerges::MergeByHeap(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& sym = *symbols;
  const int32_t n = static_cast<int32_t>(sym.size());
  if (n < 2) return;
  std::vector<int32_t> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    prev[static_cast<size_t>(i)] = i - 1;
    next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank, pos, left, right, merged;
  };
  // Min-heap on (rank, pos): the lowest rank first, the leftmost among equals.
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> heap(later);
  auto push = [&](int32_t pos) {
    const int32_t r = next[static_cast<size_t>(pos)];
    if (r < 0) return;
    const int32_t left = sym[static_cast<size_t>(pos)], right = sym[static_cast<size_t>(r)];
    if (const Rule* rule = Find(left, right)) heap.push(Candidate{rule->rank, pos, left, right, rule->merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  constexpr int32_t kDead = -1;
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const auto pos = static_cast<size_t>(c.pos);
    if (sym[pos] != c.left) continue;  // stale: the left symbol was merged or removed
    const int32_t r = next[pos];
    if (r < 0 || sym[static_cast<size_t>(r)] != c.right) continue;  // stale right neighbour
    sym[pos] = c.merged;
    sym[static_cast<size_t>(r)] = kDead;
    const int32_t rr = next[static_cast<size_t>(r)];
    next[pos] = rr;
    if (rr >= 0) prev[static_cast<size_t>(rr)] = c.pos;
    if (prev[pos] >= 0) push(prev[pos]);
    push(c.pos);
  }
  sym.erase(std::remove(sym.begin(), sym.end(), kDead), sym.end());
}

BpeCache::BpeCache(size_t capacity)
    : per_shard_capacity_(capacity == 0 ? 0 : std::max<size_t>(1, capacity / kShards)),
      shards_(new Shard[kShards]) {}

BpeCache::Shard& BpeCache::ShardOf(std::string_view word, size_t* hash) const {
  *hash = absl::Hash<absl::string_view>{}(AsAbsl(word));
  return shards_[(*hash >> 7) % kShards];
}

bool BpeCache::Lookup(std::string_view word, std::vector<int64_t>* out) const {
  if (per_shard_capacity_ == 0 || word.size() > kMaxWordBytes) return false;
  size_t hash;
  Shard& shard = ShardOf(word, &hash);
  absl::ReaderMutexLock lock(&shard.mu);
  auto it = shard.map.find(AsAbsl(word));
  if (it == shard.map.end()) return false;
  out->insert(out->end(), it->second.begin(), it->second.end());
  return true;
}

void BpeCache::Insert(std::string_view word, const std::vector<int32_t>& ids) const {
  if (per_shard_capacity_ == 0 || word.size() > kMaxWordBytes) return;
  size_t hash;
  Shard& shard = ShardOf(word, &hash);
  absl::MutexLock lock(&shard.mu);
  if (shard.map.size() >= per_shard_capacity_) shard.map.clear();
  shard.map.emplace(std::string(word), ids);
}

}  // namespace tokenizer_internal
}  // namespace swarr
