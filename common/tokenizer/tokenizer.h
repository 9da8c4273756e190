// Byte-level BPE tokenizer for HF `tokenizer.json` files of the Qwen2 / Qwen2.5 / Qwen3,
// Llama 3 and GPT-2 families, producing the ids HF tokenizers produces with
// `encode(text, add_special_tokens=False)`.
//
// What a tokenizer.json may contain (anything else is kInvalidArgument naming the field):
//   model          {"type": "BPE"} with `vocab` (token -> id) and `merges` ("a b" strings or
//                  ["a", "b"] pairs); `ignore_merges` (Llama 3) honoured; dropout must be null,
//                  byte_fallback false, continuing_subword_prefix / end_of_word_suffix empty.
//   normalizer     null, "NFC", or a "Sequence" of those.
//   pre_tokenizer  "ByteLevel" with use_regex = true (the GPT-2 regex), or a "Sequence" of a
//                  "Split" (Isolated, not inverted) with one of the known regexes and a
//                  "ByteLevel" with use_regex = false. The Split regex is run by a hand-written
//                  scanner (pre_tokenizer.h): Qwen2, Llama 3 (\p{N}{1,3}) and GPT-2 patterns;
//                  any other pattern is an error naming it. ByteLevel's add_prefix_space is
//                  honoured (a space is prepended to each piece that does not start with one).
//   decoder        "ByteLevel" (or null, treated the same).
//   added_tokens   matched in the text before anything else, leftmost then longest; lstrip /
//                  rstrip swallow adjacent whitespace, single_word requires no letter, digit or
//                  '_' next to the match; tokens with normalized = false are matched in the
//                  raw text, tokens with normalized = true in the NFC-normalized remainder.
//   post_processor ignored: Encode never adds BOS/EOS or a template.
//
// Pipeline of Encode: UTF-8 check -> split on added tokens -> normalize (NFC) -> pre-tokenize
// (regex pieces) -> BPE per piece over its bytes (ByteLevel: every byte is a symbol) -> ids.
//
// Thread safety: a Tokenizer is immutable after construction except for its internal cache of
// BPE results, which is sharded and mutex-protected; every const method may be called from any
// number of threads concurrently.
#ifndef SWARR_COMMON_TOKENIZER_TOKENIZER_H_
#define SWARR_COMMON_TOKENIZER_TOKENIZER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/added_tokens.h"
#include "common/tokenizer/bpe.h"
#include "common/tokenizer/pre_tokenizer.h"

namespace swarr {

struct TokenizerOptions {
  // Number of pre-token words whose BPE result is cached (words of at most 256 bytes); 0
  // disables the cache. About 100 bytes of memory per entry. Default 65536 words.
  size_t cache_capacity = 65536;
};

class Tokenizer {
 public:
  // Loads `path` (a tokenizer.json). Unreadable file: the ReadFile error (kNotFound, ...);
  // malformed or unsupported content: kInvalidArgument naming the path and the field.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path,
                                                             const TokenizerOptions& options = {});
  // Parses the text of a tokenizer.json. kInvalidArgument naming the field on malformed or
  // unsupported content (bad JSON, model type, missing vocab, a merge naming an unknown token,
  // unsupported normalizer / pre-tokenizer / decoder type, ...).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(const std::string& json_text,
                                                             const TokenizerOptions& options = {});

  // Token ids of `text`. Added/special tokens written in the text are matched first and
  // become their single ids. No BOS/EOS is added. Invalid UTF-8: kInvalidArgument naming the
  // byte offset of the first ill-formed sequence.
  absl::StatusOr<std::vector<int64_t>> Encode(std::string_view text) const;

  // Text of `ids`: the bytes of each token concatenated (added/special tokens verbatim), and
  // any ill-formed UTF-8 this leaves (e.g. a multi-byte character cut between ids) replaced by
  // U+FFFD, as HF's decode(ids, skip_special_tokens=False) does. An id that is negative,
  // >= vocab_size() or unassigned: kInvalidArgument naming the id and its index in `ids`.
  absl::StatusOr<std::string> Decode(const std::vector<int64_t>& ids) const;

  // Max id + 1 over the vocabulary and the added tokens.
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_bytes_.size()); }

  // Id of a token as written in tokenizer.json (byte-level form for vocabulary tokens, e.g.
  // "Ġthe"; the content for added tokens, e.g. "<|im_end|>"), or nullopt.
  std::optional<int64_t> TokenToId(std::string_view token) const;

  // True if `id` is an added token marked special (e.g. <|im_end|>).
  bool IsSpecial(int64_t id) const;

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

 private:
  explicit Tokenizer(const TokenizerOptions& options);
  friend class TokenizerBuilder;

  // Appends the ids of one text segment (between added tokens, not yet normalized).
  void EncodeSegment(std::string_view segment, std::vector<int64_t>* ids) const;
  // Appends the ids of one normalized segment (pre-tokenize + BPE).
  void EncodeNormalized(std::string_view text, std::vector<int64_t>* ids) const;
  // Appends the ids of one pre-token word.
  void EncodeWord(std::string_view word, std::vector<int64_t>* ids) const;

  // Normalization and pre-tokenization.
  // ByteLevel add_prefix_space: where a space is prepended (to each text segment when the
  // ByteLevel regex does the split, to each piece when a Split precedes ByteLevel).
  enum class PrefixSpace { kNone, kSegment, kPiece };
  bool nfc_ = false;
  bool split_ = true;  // false: no regex, each text segment is one word
  tokenizer_internal::SplitPattern pattern_ = tokenizer_internal::SplitPattern::kQwen2;
  PrefixSpace prefix_space_ = PrefixSpace::kNone;

  // Model.
  std::array<int32_t, 256> byte_ids_{};  // id of the single-byte token of each byte
  tokenizer_internal::BpeMerges merges_;
  bool ignore_merges_ = false;
  absl::flat_hash_map<std::string, int32_t> bytes_to_id_;  // raw bytes -> id (ignore_merges only)

  // Vocabulary: tokenizer.json spelling -> id, and id -> decoded bytes.
  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  std::vector<std::string> id_to_bytes_;
  std::vector<uint8_t> id_kind_;  // 0 unassigned, 1 vocabulary, 2 added, 3 added special

  tokenizer_internal::AddedTokenMatcher raw_added_;         // normalized = false
  tokenizer_internal::AddedTokenMatcher normalized_added_;  // normalized = true

  tokenizer_internal::BpeCache cache_;
};

}  // namespace swarr

#endif  // SWARR_COMMON_TOKENIZER_TOKENIZER_H_
