#include "common/tokenizer/tokenizer.h"

#include <cstdint>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/tokenizer/unicode.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace swarr {

using json = nlohmann::json;
using tokenizer_internal::AddedTokenSpec;

namespace {

// Ids above this are rejected (id_to_bytes_ is indexed by id).
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;

// GPT-2's bytes_to_unicode(): the printable code point standing for each byte in
// byte-level vocabularies (printable Latin-1 maps to itself, the rest to U+0100 onwards).
const std::array<char32_t, 256>& ByteToChar() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

// Inverse of ByteToChar over code points 0..323; -1 where a code point stands for no byte.
const std::array<int, 324>& CharToByte() {
  static const std::array<int, 324> table = [] {
    std::array<int, 324> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[ByteToChar()[static_cast<size_t>(b)]] = b;
    return t;
  }();
  return table;
}

// The bytes a vocabulary token stands for. Like HF's ByteLevel decoder, a token with a
// character outside the byte alphabet decodes to its own UTF-8 bytes.
std::string TokenBytes(const std::string& token) {
  std::string bytes;
  bytes.reserve(token.size());
  const char* p = token.data();
  const char* end = p + token.size();
  while (p < end) {
    int len;
    const char32_t cp = tokenizer_internal::DecodeUtf8(p, &len);
    if (cp >= CharToByte().size() || CharToByte()[cp] < 0) return token;
    bytes.push_back(static_cast<char>(CharToByte()[cp]));
    p += len;
  }
  return bytes;
}

std::string ByteToken(unsigned char b) {
  std::string s;
  tokenizer_internal::AppendUtf8(ByteToChar()[b], &s);
  return s;
}

absl::Status Invalid(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(tokenizer_internal::AsAbsl(field), ": ", tokenizer_internal::AsAbsl(what)));
}

std::optional<int64_t> AsInt(const json& j) {
  if (j.is_number_unsigned()) {
    const auto u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  return std::nullopt;
}

// A boolean field of `obj` (absent or null: `fallback`).
absl::StatusOr<bool> BoolField(const json& obj, const char* key, const std::string& path, bool fallback) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return Invalid(absl::StrCat(path, ".", key), "expected true or false");
  return it->get<bool>();
}

// The "type" string of a component object.
absl::StatusOr<std::string> TypeOf(const json& obj, const std::string& path) {
  if (!obj.is_object()) return Invalid(path, "expected an object");
  auto it = obj.find("type");
  if (it == obj.end() || !it->is_string()) return Invalid(path + ".type", "missing or not a string");
  return it->get<std::string>();
}

bool IsValidUtf8(const std::string& s) { return tokenizer_internal::FindInvalidUtf8(s) == std::string::npos; }

}  // namespace

// Builds a Tokenizer from a parsed tokenizer.json (friend of Tokenizer).
class TokenizerBuilder {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Build(const json& doc, const TokenizerOptions& options) {
    if (!doc.is_object()) return Invalid("tokenizer.json", "top level is not a JSON object");
    std::unique_ptr<Tokenizer> t(new Tokenizer(options));
    SWARR_RETURN_IF_ERROR(ParseNormalizer(doc, t.get()));
    SWARR_RETURN_IF_ERROR(ParsePreTokenizer(doc, t.get()));
    SWARR_RETURN_IF_ERROR(ParseDecoder(doc));
    SWARR_RETURN_IF_ERROR(ParseModel(doc, t.get()));
    SWARR_RETURN_IF_ERROR(ParseAddedTokens(doc, t.get()));
    return t;
  }

 private:
  // Adds the normalizers of `n` (at `path`) to *nfc.
  static absl::Status ParseNormalizerValue(const json& n, const std::string& path, bool* nfc) {
    if (n.is_null()) return absl::OkStatus();
    SWARR_ASSIGN_OR_RETURN(const std::string type, TypeOf(n, path));
    if (type == "NFC") {
      *nfc = true;
      return absl::OkStatus();
    }
    if (type == "Sequence") {
      auto it = n.find("normalizers");
      if (it == n.end() || !it->is_array()) return Invalid(path + ".normalizers", "missing or not an array");
      for (size_t i = 0; i < it->size(); ++i) {
        SWARR_RETURN_IF_ERROR(ParseNormalizerValue((*it)[i], absl::StrCat(path, ".normalizers[", i, "]"), nfc));
      }
      return absl::OkStatus();
    }
    return Invalid(path + ".type", absl::StrCat("unsupported normalizer '", type, "' (supported: NFC, Sequence)"));
  }

  static absl::Status ParseNormalizer(const json& doc, Tokenizer* t) {
    auto it = doc.find("normalizer");
    if (it == doc.end()) return absl::OkStatus();
    return ParseNormalizerValue(*it, "normalizer", &t->nfc_);
  }

  static absl::Status ParseByteLevel(const json& p, const std::string& path, bool* use_regex, bool* prefix) {
    SWARR_ASSIGN_OR_RETURN(*use_regex, BoolField(p, "use_regex", path, true));
    SWARR_ASSIGN_OR_RETURN(*prefix, BoolField(p, "add_prefix_space", path, true));
    return absl::OkStatus();
  }

  static absl::Status ParseSplit(const json& p, const std::string& path, Tokenizer* t) {
    auto pat = p.find("pattern");
    if (pat == p.end() || !pat->is_object()) return Invalid(path + ".pattern", "missing or not an object");
    auto re = pat->find("Regex");
    if (re == pat->end() || !re->is_string()) {
      return Invalid(path + ".pattern", "only {\"Regex\": ...} patterns are supported");
    }
    auto scanner = tokenizer_internal::RecognizeSplitPattern(re->get<std::string>());
    if (!scanner.ok()) return Invalid(path + ".pattern.Regex", std::string(scanner.status().message()));
    auto behavior = p.find("behavior");
    if (behavior == p.end() || !behavior->is_string() || behavior->get<std::string>() != "Isolated") {
      return Invalid(path + ".behavior", "only \"Isolated\" is supported");
    }
    SWARR_ASSIGN_OR_RETURN(const bool invert, BoolField(p, "invert", path, false));
    if (invert) return Invalid(path + ".invert", "inverted splits are not supported");
    t->pattern_ = *scanner;
    t->split_ = true;
    return absl::OkStatus();
  }

  static absl::Status ParsePreTokenizer(const json& doc, Tokenizer* t) {
    auto it = doc.find("pre_tokenizer");
    if (it == doc.end() || it->is_null()) {
      return Invalid("pre_tokenizer", "missing (a byte-level BPE needs a ByteLevel pre-tokenizer)");
    }
    SWARR_ASSIGN_OR_RETURN(const std::string type, TypeOf(*it, "pre_tokenizer"));
    bool use_regex = false, prefix = false;
    if (type == "ByteLevel") {
      SWARR_RETURN_IF_ERROR(ParseByteLevel(*it, "pre_tokenizer", &use_regex, &prefix));
      t->split_ = use_regex;
      t->pattern_ = tokenizer_internal::SplitPattern::kGpt2;
      t->prefix_space_ = prefix ? Tokenizer::PrefixSpace::kSegment : Tokenizer::PrefixSpace::kNone;
      return absl::OkStatus();
    }
    if (type != "Sequence") {
      return Invalid("pre_tokenizer.type",
                     absl::StrCat("unsupported pre-tokenizer '", type, "' (supported: ByteLevel, Sequence)"));
    }
    auto list = it->find("pretokenizers");
    if (list == it->end() || !list->is_array()) {
      return Invalid("pre_tokenizer.pretokenizers", "missing or not an array");
    }
    bool have_split = false, have_byte_level = false;
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string path = absl::StrCat("pre_tokenizer.pretokenizers[", i, "]");
      const json& p = (*list)[i];
      SWARR_ASSIGN_OR_RETURN(const std::string sub, TypeOf(p, path));
      if (sub == "Split") {
        if (have_split || have_byte_level) {
          return Invalid(path, "only one Split, before the ByteLevel pre-tokenizer, is supported");
        }
        SWARR_RETURN_IF_ERROR(ParseSplit(p, path, t));
        have_split = true;
      } else if (sub == "ByteLevel") {
        if (have_byte_level) return Invalid(path, "only one ByteLevel pre-tokenizer is supported");
        SWARR_RETURN_IF_ERROR(ParseByteLevel(p, path, &use_regex, &prefix));
        have_byte_level = true;
        if (use_regex && have_split) {
          return Invalid(path + ".use_regex", "a ByteLevel regex after a Split is not supported");
        }
        if (!have_split) {
          t->split_ = use_regex;
          t->pattern_ = tokenizer_internal::SplitPattern::kGpt2;
        }
        t->prefix_space_ = !prefix ? Tokenizer::PrefixSpace::kNone
                           : have_split ? Tokenizer::PrefixSpace::kPiece
                                        : Tokenizer::PrefixSpace::kSegment;
      } else {
        return Invalid(path + ".type",
                       absl::StrCat("unsupported pre-tokenizer '", sub, "' (supported: Split, ByteLevel)"));
      }
    }
    if (!have_byte_level) return Invalid("pre_tokenizer", "no ByteLevel pre-tokenizer (not a byte-level BPE)");
    return absl::OkStatus();
  }

  static absl::Status ParseDecoder(const json& doc) {
    auto it = doc.find("decoder");
    if (it == doc.end() || it->is_null()) return absl::OkStatus();
    SWARR_ASSIGN_OR_RETURN(const std::string type, TypeOf(*it, "decoder"));
    if (type != "ByteLevel") {
      return Invalid("decoder.type", absl::StrCat("unsupported decoder '", type, "' (supported: ByteLevel)"));
    }
    return absl::OkStatus();
  }

  static absl::Status ParseModel(const json& doc, Tokenizer* t) {
    auto mit = doc.find("model");
    if (mit == doc.end() || !mit->is_object()) return Invalid("model", "missing or not an object");
    const json& model = *mit;
    auto type = model.find("type");
    if (type != model.end()) {
      if (!type->is_string()) return Invalid("model.type", "not a string");
      if (type->get<std::string>() != "BPE") {
        return Invalid("model.type", absl::StrCat("unsupported model type '", type->get<std::string>(),
                                                  "' (only BPE)"));
      }
    }
    if (auto d = model.find("dropout"); d != model.end() && !d->is_null()) {
      return Invalid("model.dropout", "BPE dropout is not supported");
    }
    SWARR_ASSIGN_OR_RETURN(const bool byte_fallback, BoolField(model, "byte_fallback", "model", false));
    if (byte_fallback) return Invalid("model.byte_fallback", "not supported (byte-level BPE only)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      auto f = model.find(key);
      if (f != model.end() && !f->is_null() && !(f->is_string() && f->get<std::string>().empty())) {
        return Invalid(absl::StrCat("model.", key), "must be empty for byte-level BPE");
      }
    }
    SWARR_ASSIGN_OR_RETURN(t->ignore_merges_, BoolField(model, "ignore_merges", "model", false));

    // Vocabulary.
    auto vocab = model.find("vocab");
    if (vocab == model.end()) return Invalid("model.vocab", "missing");
    if (!vocab->is_object()) return Invalid("model.vocab", "not an object of token -> id");
    int64_t max_id = -1;
    for (auto& [token, value] : vocab->items()) {
      const std::optional<int64_t> id = AsInt(value);
      if (!id || *id < 0 || *id > kMaxTokenId) {
        return Invalid(absl::StrCat("model.vocab[\"", token, "\"]"),
                       absl::StrCat("id ", value.dump(), " is not an integer in [0, ", kMaxTokenId, "]"));
      }
      max_id = std::max(max_id, *id);
    }
    if (max_id < 0) return Invalid("model.vocab", "empty");
    t->id_to_bytes_.resize(static_cast<size_t>(max_id + 1));
    t->id_kind_.assign(static_cast<size_t>(max_id + 1), 0);
    t->token_to_id_.reserve(vocab->size());
    for (auto& [token, value] : vocab->items()) {
      const auto id = static_cast<int32_t>(*AsInt(value));
      t->token_to_id_[token] = id;
      t->id_to_bytes_[static_cast<size_t>(id)] = TokenBytes(token);
      t->id_kind_[static_cast<size_t>(id)] = 1;
      if (t->ignore_merges_) t->bytes_to_id_[t->id_to_bytes_[static_cast<size_t>(id)]] = id;
    }
    for (int b = 0; b < 256; ++b) {
      const std::string token = ByteToken(static_cast<unsigned char>(b));
      auto it = t->token_to_id_.find(token);
      if (it == t->token_to_id_.end()) {
        return Invalid("model.vocab", absl::StrFormat("no token \"%s\" for byte 0x%02X (not a byte-level BPE "
                                                      "vocabulary)", token, b));
      }
      t->byte_ids_[static_cast<size_t>(b)] = it->second;
    }

    // Merges, by rank.
    auto merges = model.find("merges");
    if (merges == model.end()) return Invalid("model.merges", "missing");
    if (!merges->is_array()) return Invalid("model.merges", "not an array");
    for (size_t i = 0; i < merges->size(); ++i) {
      const json& m = (*merges)[i];
      const std::string path = absl::StrCat("model.merges[", i, "]");
      std::string left, right;
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        const size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
          return Invalid(path, absl::StrCat("'", s, "' is not two tokens separated by one space"));
        }
        left = s.substr(0, space);
        right = s.substr(space + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        return Invalid(path, "expected \"a b\" or [\"a\", \"b\"]");
      }
      int32_t ids[3];
      const std::string parts[3] = {left, right, left + right};
      for (int k = 0; k < 3; ++k) {
        auto it = t->token_to_id_.find(parts[k]);
        if (it == t->token_to_id_.end()) {
          return Invalid(path, absl::StrCat(k == 2 ? "merged token '" : "token '", parts[k], "' is not in model.vocab"));
        }
        ids[k] = it->second;
      }
      t->merges_.Add(ids[0], ids[1], ids[2], static_cast<int32_t>(i));
    }
    return absl::OkStatus();
  }

  static absl::Status ParseAddedTokens(const json& doc, Tokenizer* t) {
    auto list = doc.find("added_tokens");
    if (list == doc.end() || list->is_null()) return absl::OkStatus();
    if (!list->is_array()) return Invalid("added_tokens", "not an array");
    for (size_t i = 0; i < list->size(); ++i) {
      const json& a = (*list)[i];
      const std::string path = absl::StrCat("added_tokens[", i, "]");
      if (!a.is_object()) return Invalid(path, "expected an object");
      auto id_it = a.find("id");
      const std::optional<int64_t> id = id_it == a.end() ? std::nullopt : AsInt(*id_it);
      if (!id || *id < 0 || *id > kMaxTokenId) {
        return Invalid(path + ".id", absl::StrCat("missing or not an integer in [0, ", kMaxTokenId, "]"));
      }
      auto content = a.find("content");
      if (content == a.end() || !content->is_string() || content->get_ref<const std::string&>().empty()) {
        return Invalid(path + ".content", "missing, empty or not a string");
      }
      AddedTokenSpec spec;
      spec.content = content->get<std::string>();
      spec.id = static_cast<int32_t>(*id);
      SWARR_ASSIGN_OR_RETURN(const bool special, BoolField(a, "special", path, false));
      SWARR_ASSIGN_OR_RETURN(spec.lstrip, BoolField(a, "lstrip", path, false));
      SWARR_ASSIGN_OR_RETURN(spec.rstrip, BoolField(a, "rstrip", path, false));
      SWARR_ASSIGN_OR_RETURN(spec.single_word, BoolField(a, "single_word", path, false));
      SWARR_ASSIGN_OR_RETURN(const bool normalized, BoolField(a, "normalized", path, !special));

      if (static_cast<size_t>(*id) >= t->id_to_bytes_.size()) {
        t->id_to_bytes_.resize(static_cast<size_t>(*id) + 1);
        t->id_kind_.resize(static_cast<size_t>(*id) + 1, 0);
      }
      t->id_to_bytes_[static_cast<size_t>(*id)] = spec.content;
      t->id_kind_[static_cast<size_t>(*id)] = special ? 3 : 2;
      t->token_to_id_[spec.content] = spec.id;
      if (normalized) {
        if (t->nfc_) spec.content = tokenizer_internal::Nfc(spec.content);
        t->normalized_added_.Add(spec);
      } else {
        t->raw_added_.Add(spec);
      }
    }
    return absl::OkStatus();
  }
};

Tokenizer::Tokenizer(const TokenizerOptions& options) : cache_(options.cache_capacity) {}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path,
                                                               const TokenizerOptions& options) {
  SWARR_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  auto tokenizer = FromJson(text, options);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(), absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(const std::string& json_text,
                                                               const TokenizerOptions& options) {
  // nlohmann's parser rejects ill-formed UTF-8 in strings, so every token string is valid.
  const json doc = json::parse(json_text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Invalid("tokenizer.json", "not valid JSON");
  return TokenizerBuilder::Build(doc, options);
}

absl::StatusOr<std::vector<int64_t>> Tokenizer::Encode(std::string_view text) const {
  if (const size_t bad = tokenizer_internal::FindInvalidUtf8(text); bad != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8 at byte offset ", bad));
  }
  std::vector<int64_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (raw_added_.empty()) {
    EncodeSegment(text, &ids);
    return ids;
  }
  std::vector<tokenizer_internal::AddedTokenMatcher::Segment> segments;
  raw_added_.Split(text, &segments);
  for (const auto& s : segments) {
    if (s.id >= 0) {
      ids.push_back(s.id);
    } else {
      EncodeSegment(s.text, &ids);
    }
  }
  return ids;
}

void Tokenizer::EncodeSegment(std::string_view segment, std::vector<int64_t>* ids) const {
  std::string normalized;
  if (nfc_ && tokenizer_internal::MayNeedNfc(segment)) {
    normalized = tokenizer_internal::Nfc(segment);
    segment = normalized;
  }
  if (normalized_added_.empty()) {
    EncodeNormalized(segment, ids);
    return;
  }
  std::vector<tokenizer_internal::AddedTokenMatcher::Segment> segments;
  normalized_added_.Split(segment, &segments);
  for (const auto& s : segments) {
    if (s.id >= 0) {
      ids->push_back(s.id);
    } else {
      EncodeNormalized(s.text, ids);
    }
  }
}

void Tokenizer::EncodeNormalized(std::string_view text, std::vector<int64_t>* ids) const {
  if (text.empty()) return;
  std::string prefixed;
  if (prefix_space_ == PrefixSpace::kSegment && text[0] != ' ') {
    prefixed = absl::StrCat(" ", tokenizer_internal::AsAbsl(text));
    text = prefixed;
  }
  if (!split_) {
    EncodeWord(text, ids);
    return;
  }
  std::string piece_with_space;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = tokenizer_internal::PieceEnd(pattern_, text, pos);
    std::string_view piece = text.substr(pos, end - pos);
    if (prefix_space_ == PrefixSpace::kPiece && piece[0] != ' ') {
      piece_with_space = absl::StrCat(" ", tokenizer_internal::AsAbsl(piece));
      piece = piece_with_space;
    }
    EncodeWord(piece, ids);
    pos = end;
  }
}

void Tokenizer::EncodeWord(std::string_view word, std::vector<int64_t>* ids) const {
  if (word.size() == 1) {
    ids->push_back(byte_ids_[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (ignore_merges_) {
    auto it = bytes_to_id_.find(tokenizer_internal::AsAbsl(word));
    if (it != bytes_to_id_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  if (cache_.Lookup(word, ids)) return;
  std::vector<int32_t> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i) symbols[i] = byte_ids_[static_cast<unsigned char>(word[i])];
  merges_.Merge(&symbols);
  cache_.Insert(word, symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
}

absl::StatusOr<std::string> Tokenizer::Decode(const std::vector<int64_t>& ids) const {
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    if (id < 0 || id >= vocab_size() || id_kind_[static_cast<size_t>(id)] == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("id ", id, " at index ", i, " is outside the vocabulary (size ", vocab_size(), ")"));
    }
    bytes += id_to_bytes_[static_cast<size_t>(id)];
  }
  if (IsValidUtf8(bytes)) return bytes;
  return tokenizer_internal::Utf8Lossy(bytes);
}

std::optional<int64_t> Tokenizer::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(tokenizer_internal::AsAbsl(token));
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::IsSpecial(int64_t id) const {
  return id >= 0 && id < vocab_size() && id_kind_[static_cast<size_t>(id)] == 3;
}

}  // namespace swarr
