// safetensors files (common/model/safetensors.h): header length, JSON, dtypes, shapes, offsets.
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "common/model/safetensors.h"
#include "fuzz/fuzz_target.h"

namespace swarr_fuzz {
namespace {
std::string Header(const std::string& json) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  std::memcpy(&out[0], &n, 8);
  return out + json;
}
}  // namespace

std::vector<std::string> FuzzSeeds() {
  return {Header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})") + std::string(8, '\1'),
          Header(R"({"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F16","shape":[],"data_offsets":[8,10]}})") +
              std::string(10, '\2'),
          Header("{}")};
}
}  // namespace swarr_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // SafetensorsFile maps a path: the input goes to a private temporary file.
  static const std::string path = "/tmp/swarr_fuzz_safetensors_" + std::to_string(getpid());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto f = swarr::SafetensorsFile::Open(path);
  if (f.ok()) {
    for (const std::string& name : (*f)->names()) {
      auto v = (*f)->Get(name);
      if (v.ok() && v->nbytes > 0) {
        volatile uint8_t sink = v->data[0] ^ v->data[v->nbytes - 1];  // the span is readable
        (void)sink;
      }
    }
  }
  return 0;
}
