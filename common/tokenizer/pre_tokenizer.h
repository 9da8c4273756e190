// The pre-tokenizer regexes of byte-level BPE models, as hand-written scanners over code points
// (internal to common/tokenizer). Each scanner reproduces the leftmost-first match semantics of
// the Oniguruma regex HF tokenizers runs with "Isolated" split behaviour: the text is cut into
// consecutive pieces, every byte in exactly one piece.
//
// Thread-safe: pure functions.
#ifndef SWARR_COMMON_TOKENIZER_PRE_TOKENIZER_H_
#define SWARR_COMMON_TOKENIZER_PRE_TOKENIZER_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace swarr {
namespace tokenizer_internal {

enum class SplitPattern {
  // Qwen2 / Qwen2.5 / Qwen3:
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,
  // Llama 3: as kQwen2 with \p{N}{1,3} for \p{N}.
  kLlama3,
  // GPT-2 (the ByteLevel pre-tokenizer's own regex, use_regex = true):
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
};

// The regex source strings the scanners implement (exactly as in tokenizer.json, unescaped).
extern const char kQwen2Regex[];
extern const char kLlama3Regex[];
extern const char kGpt2Regex[];

// The scanner of a regex source string; kInvalidArgument naming the pattern if none matches.
absl::StatusOr<SplitPattern> RecognizeSplitPattern(std::string_view regex);

// End (byte offset) of the piece that starts at `pos`.
// REQUIRES: `text` is valid UTF-8, pos < text.size() and pos is a code-point boundary.
size_t PieceEnd(SplitPattern pattern, std::string_view text, size_t pos);

// All pieces of `text` in order (for tests and tools; Encode calls PieceEnd directly).
std::vector<std::string_view> SplitPieces(SplitPattern pattern, std::string_view text);

}  // namespace tokenizer_internal
}  // namespace swarr

#endif  // SWARR_COMMON_TOKENIZER_PRE_TOKENIZER_H_
