// Matching of added (special) tokens inside text, before BPE (internal to common/tokenizer).
#ifndef SWARR_COMMON_TOKENIZER_ADDED_TOKENS_H_
#define SWARR_COMMON_TOKENIZER_ADDED_TOKENS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace swarr {
namespace tokenizer_internal {

// One added token as tokenizer.json's `added_tokens` describes it.
struct AddedTokenSpec {
  std::string content;       // matched verbatim (bytes)
  int32_t id = 0;
  bool lstrip = false;       // the match also swallows whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // only matches when no letter, digit or '_' touches it
};

// Finds added tokens in text: scanning left to right, at the first position where any token
// matches, the longest one matching there (HF's leftmost-longest Aho-Corasick semantics).
//
// Thread safety: immutable after the Add() calls; Split() is safe from any number of threads.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher();

  // Adds a token; an empty content is ignored. A content added twice keeps the last spec.
  void Add(const AddedTokenSpec& spec);
  bool empty() const { return specs_.empty(); }

  struct Segment {
    std::string_view text;  // the text between tokens (when id < 0)
    int32_t id = -1;        // a matched token's id, or -1 for text
  };
  // Appends the segments of `text` to *out: text pieces (never empty) and token ids, in
  // order. Whitespace swallowed by lstrip/rstrip tokens is dropped. REQUIRES: valid UTF-8.
  void Split(std::string_view text, std::vector<Segment>* out) const;

 private:
  struct Node {
    int32_t spec = -1;                               // index into specs_ if a token ends here
    std::vector<std::pair<unsigned char, int32_t>> children;  // byte -> node index
  };
  // Index of the spec of the longest token starting at text[pos], or -1.
  int32_t LongestAt(std::string_view text, size_t pos) const;

  std::vector<AddedTokenSpec> specs_;
  std::vector<Node> nodes_;               // nodes_[0] is the root
  std::array<bool, 256> first_byte_{};   // bytes that start some token
};

}  // namespace tokenizer_internal
}  // namespace swarr

#endif  // SWARR_COMMON_TOKENIZER_ADDED_TOKENS_H_
