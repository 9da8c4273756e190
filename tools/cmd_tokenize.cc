// `swarr tokenize --tokenizer tokenizer.json --input IN.jsonl [--decode]`
//
// Encode (default): each input line {"text": "..."} -> one output line {"ids": [1, 2, 3]}.
// Decode (--decode): each input line {"ids": [...]} -> one output line {"text": "..."}.
// Input is streamed line by line (`--input -` reads stdin); output lines keep the input order.
// Blank lines (empty or only whitespace) are skipped and produce no output line. Other fields
// of the input objects are ignored.
//
// Errors (bad flags, unreadable or malformed tokenizer, unreadable input, a line that is not a
// JSON object or lacks the field, invalid UTF-8, an id outside the vocabulary): one line
// `swarr: ...` on stderr naming FILE:LINE and the field where there is one, exit status 2.
// Lines before the bad one have already been written to stdout.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/unicode.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"
#include "tools/commands.h"

namespace swarr {
namespace {

using json = nlohmann::json;

// Buffered stdout; Flush() before any message on stderr keeps the two in order.
class Output {
 public:
  ~Output() { Flush(); }
  std::string& buffer() { return buffer_; }
  void MaybeFlush() {
    if (buffer_.size() >= (1 << 16)) Flush();
  }
  void Flush() {
    if (!buffer_.empty()) std::fwrite(buffer_.data(), 1, buffer_.size(), stdout);
    buffer_.clear();
    std::fflush(stdout);
  }

 private:
  std::string buffer_;
};

// Prints `swarr: <message>` as exactly one line and returns exit status 2.
int Fail(Output& out, std::string_view message) {
  out.Flush();
  std::string line = "swarr: ";
  for (char c : message) {
    if (c == '\n') {
      line += "\\n";
    } else if (c == '\r') {
      line += "\\r";
    } else {
      line += c;
    }
  }
  line += "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  return 2;
}

int Fail(Output& out, const absl::Status& status) {
  return Fail(out, std::string_view(status.message().data(), status.message().size()));
}

bool IsBlank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n") == std::string::npos;
}

void AppendInt(int64_t v, std::string* out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, static_cast<size_t>(end - buf));
}

// {"ids": [...]} of one {"text": ...} line, or the error without the FILE:LINE prefix.
absl::Status EncodeLine(const Tokenizer& tokenizer, const json& obj, std::string* out) {
  auto it = obj.find("text");
  if (it == obj.end() || !it->is_string()) return absl::InvalidArgumentError("missing string field \"text\"");
  auto ids = tokenizer.Encode(it->get_ref<const std::string&>());
  if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat("field \"text\": ", ids.status().message()));
  *out += "{\"ids\": [";
  for (size_t i = 0; i < ids->size(); ++i) {
    if (i > 0) *out += ", ";
    AppendInt((*ids)[i], out);
  }
  *out += "]}\n";
  return absl::OkStatus();
}

// {"text": ...} of one {"ids": [...]} line.
absl::Status DecodeLine(const Tokenizer& tokenizer, const json& obj, std::string* out) {
  auto it = obj.find("ids");
  if (it == obj.end() || !it->is_array()) return absl::InvalidArgumentError("missing array field \"ids\"");
  std::vector<int64_t> ids;
  ids.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX)) {
      ids.push_back(v.get<int64_t>());
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("field \"ids\": element ", i, " (", v.dump(), ") is not an integer id"));
    }
  }
  auto text = tokenizer.Decode(ids);
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("field \"ids\": ", text.status().message()));
  *out += "{\"text\": ";
  *out += json(*text).dump(-1, ' ', false, json::error_handler_t::replace);
  *out += "}\n";
  return absl::OkStatus();
}

}  // namespace

int RunTokenize(const std::vector<std::string>& args) {
  Output out;
  auto parsed = Args::Parse(args, {"tokenizer", "input"}, {"decode"});
  if (!parsed.ok()) return Fail(out, parsed.status());
  auto tokenizer_path = parsed->Required("tokenizer");
  if (!tokenizer_path.ok()) return Fail(out, tokenizer_path.status());
  auto input_path = parsed->Required("input");
  if (!input_path.ok()) return Fail(out, input_path.status());
  const bool decode = parsed->Has("decode");

  auto tokenizer = Tokenizer::FromFile(*tokenizer_path);
  if (!tokenizer.ok()) return Fail(out, absl::StrCat("--tokenizer: ", tokenizer.status().message()));

  std::ifstream file;
  std::istream* in = &std::cin;
  if (*input_path != "-") {
    file.open(*input_path);
    if (!file) return Fail(out, absl::StrCat("--input: cannot open ", *input_path, ": ", std::strerror(errno)));
    in = &file;
  }
  std::string line;
  int64_t line_number = 0;
  while (std::getline(*in, line)) {
    ++line_number;
    if (IsBlank(line)) continue;
    const std::string where = absl::StrCat(*input_path, ":", line_number, ": ");
    // nlohmann would report ill-formed UTF-8 as a parse error; name it first.
    if (const size_t bad = tokenizer_internal::FindInvalidUtf8(line); bad != std::string::npos) {
      return Fail(out, absl::StrCat(where, "invalid UTF-8 at byte offset ", bad, " of the line"));
    }
    const json obj = json::parse(line, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (obj.is_discarded()) return Fail(out, absl::StrCat(where, "not valid JSON"));
    if (!obj.is_object()) return Fail(out, absl::StrCat(where, "not a JSON object"));
    const absl::Status st = decode ? DecodeLine(**tokenizer, obj, &out.buffer())
                                   : EncodeLine(**tokenizer, obj, &out.buffer());
    if (!st.ok()) return Fail(out, absl::StrCat(where, st.message()));
    out.MaybeFlush();
  }
  if (in->bad()) return Fail(out, absl::StrCat("--input: read error on ", *input_path, ": ", std::strerror(errno)));
  out.Flush();
  return 0;
}

}  // namespace swarr
