// tokenizer.json (common/tokenizer/tokenizer.h): FromJson on the input; and Encode / Decode of
// the input with the real Qwen2 tokenizer (the first byte chooses).
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "common/tokenizer/tokenizer.h"
#include "fuzz/fuzz_target.h"

namespace {
const swarr::Tokenizer* Qwen2() {
  static std::unique_ptr<swarr::Tokenizer> t = [] {
    auto r = swarr::Tokenizer::FromFile(SWARR_SHARED_DIR "/fixtures/tokenizer/qwen2/tokenizer.json");
    return r.ok() ? *std::move(r) : nullptr;
  }();
  return t.get();
}
}  // namespace

namespace swarr_fuzz {
std::vector<std::string> FuzzSeeds() {
  std::vector<std::string> out;
  std::ifstream in(SWARR_SOURCE_DIR "/configs/demo/tokenizer.json");
  std::stringstream ss;
  ss << in.rdbuf();
  if (!ss.str().empty()) out.push_back(std::string(1, '\0') + ss.str());
  out.push_back(std::string(1, '\0') +
                R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"added_tokens":[)"
                R"({"id":3,"content":"<|im_end|>","special":true}],"pre_tokenizer":{"type":"ByteLevel"},)"
                R"("decoder":{"type":"ByteLevel"}})");
  out.push_back(std::string(1, '\1') + "<|im_start|>user\nWhat is 2+2? \\boxed{4} caf\xc3\xa9 \xf0\x9f\x98\x80<|im_end|>");
  out.push_back(std::string(1, '\2') + std::string("\x01\x00\x00\x00\xff\xff\x00\x00", 8));
  return out;
}
}  // namespace swarr_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto t = swarr::Tokenizer::FromJson(rest);
      if (t.ok()) (void)(*t)->Encode("hello world 12 + 3");
      break;
    }
    case 1:
      if (const swarr::Tokenizer* t = Qwen2()) {
        auto ids = t->Encode(rest);
        if (ids.ok()) (void)t->Decode(*ids);
      }
      break;
    default:
      if (const swarr::Tokenizer* t = Qwen2()) {
        // Ids from 4-byte words, some out of range: Decode names them, never crashes.
        std::vector<int64_t> ids;
        for (size_t i = 0; i + 4 <= rest.size(); i += 4) {
          int32_t v;
          std::memcpy(&v, rest.data() + i, 4);
          ids.push_back(v);
        }
        (void)t->Decode(ids);
      }
  }
  return 0;
}
