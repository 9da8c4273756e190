#include "common/tokenizer/added_tokens.h"

#include "common/tokenizer/unicode.h"

namespace swarr {
namespace tokenizer_internal {
namespace {

// Start of the code point that ends just before byte `pos` (REQUIRES: pos > 0, valid UTF-8).
size_t PrevCodePointStart(std::string_view text, size_t pos) {
  size_t i = pos - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  return i;
}

bool IsWordChar(char32_t cp) { return cp == '_' || (CharClass(cp) & (kLetter | kNumber)) != 0; }

}  // namespace

AddedTokenMatcher::AddedTokenMatcher() : nodes_(1) {}

void AddedTokenMatcher::Add(const AddedTokenSpec& spec) {
  if (spec.content.empty()) return;
  int32_t node = 0;
  for (char ch : spec.content) {
    const auto b = static_cast<unsigned char>(ch);
    int32_t child = -1;
    for (const auto& [byte, index] : nodes_[static_cast<size_t>(node)].children) {
      if (byte == b) child = index;
    }
    if (child < 0) {
      child = static_cast<int32_t>(nodes_.size());
      nodes_[static_cast<size_t>(node)].children.emplace_back(b, child);
      nodes_.emplace_back();
    }
    node = child;
  }
  Node& end = nodes_[static_cast<size_t>(node)];
  if (end.spec >= 0) {
    specs_[static_cast<size_t>(end.spec)] = spec;
  } else {
    end.spec = static_cast<int32_t>(specs_.size());
    specs_.push_back(spec);
  }
  first_byte_[static_cast<unsigned char>(spec.content[0])] = true;
}

int32_t AddedTokenMatcher::LongestAt(std::string_view text, size_t pos) const {
  int32_t node = 0, found = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    int32_t child = -1;
    for (const auto& [byte, index] : nodes_[static_cast<size_t>(node)].children) {
      if (byte == b) {
        child = index;
        break;
      }
    }
    if (child < 0) break;
    node = child;
    if (nodes_[static_cast<size_t>(node)].spec >= 0) found = nodes_[static_cast<size_t>(node)].spec;
  }
  return found;
}

void AddedTokenMatcher::Split(std::string_view text, std::vector<Segment>* out) const {
  size_t text_start = 0;  // start of the pending text segment
  size_t pos = 0;
  const size_t n = text.size();
  while (pos < n) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    const int32_t s = LongestAt(text, pos);
    if (s < 0) {
      ++pos;
      continue;
    }
    const AddedTokenSpec& spec = specs_[static_cast<size_t>(s)];
    size_t start = pos, end = pos + spec.content.size();
    if (spec.single_word) {
      int len;
      const bool word_before =
          start > 0 && IsWordChar(DecodeUtf8(text.data() + PrevCodePointStart(text, start), &len));
      const bool word_after = end < n && IsWordChar(DecodeUtf8(text.data() + end, &len));
      if (word_before || word_after) {
        ++pos;
        continue;
      }
    }
    if (spec.lstrip) {
      while (start > text_start) {
        const size_t prev = PrevCodePointStart(text, start);
        int len;
        if (!(CharClass(DecodeUtf8(text.data() + prev, &len)) & kSpace)) break;
        start = prev;
      }
    }
    if (spec.rstrip) {
      while (end < n) {
        int len;
        if (!(CharClass(DecodeUtf8(text.data() + end, &len)) & kSpace)) break;
        end += static_cast<size_t>(len);
      }
    }
    if (start > text_start) out->push_back(Segment{text.substr(text_start, start - text_start), -1});
    out->push_back(Segment{std::string_view(), spec.id});
    pos = text_start = end;
  }
  if (n > text_start) out->push_back(Segment{text.substr(text_start), -1});
}

}  // namespace tokenizer_internal
}  // namespace swarr
