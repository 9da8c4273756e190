// The weights wire format (common/rpc/weights_wire.h): a WeightsHeader message and the data
// that follows, as a rollout server receives them (ValidateWeightsBlob: table, ranges, dtypes,
// checksum). Input: 4-byte header length, the serialized header, the data.
#include <cstring>

#include "common/rpc/weights_wire.h"
#include "fuzz/fuzz_target.h"
#include "proto/swarr/v1/learner.pb.h"

namespace swarr_fuzz {
namespace {
std::string Frame(const swarr::v1::WeightsHeader& h, const std::string& data) {
  const std::string bytes = h.SerializeAsString();
  uint32_t n = static_cast<uint32_t>(bytes.size());
  std::string out(4, '\0');
  std::memcpy(&out[0], &n, 4);
  return out + bytes + data;
}
}  // namespace

std::vector<std::string> FuzzSeeds() {
  swarr::v1::WeightsHeader h;
  h.mutable_version()->set_version(3);
  h.mutable_version()->set_learner_incarnation("inc");
  h.set_config_json(R"({"model_type":"qwen2","vocab_size":4})");
  std::string data(24, '\0');
  for (int i = 0; i < 24; ++i) data[i] = static_cast<char>(i * 7);
  auto* a = h.add_tensors();
  a->set_name("a");
  a->set_dtype("F32");
  a->add_shape(2);
  a->add_shape(2);
  a->set_offset(0);
  a->set_nbytes(16);
  auto* b = h.add_tensors();
  b->set_name("b");
  b->set_dtype("BF16");
  b->add_shape(4);
  b->set_offset(16);
  b->set_nbytes(8);
  h.set_total_bytes(24);
  h.set_xxhash64(swarr::Xxh64(data.data(), data.size()));
  swarr::v1::WeightsHeader bad = h;
  bad.mutable_tensors(1)->set_offset(12);  // overlapping
  return {Frame(h, data), Frame(bad, data)};
}
}  // namespace swarr_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t n;
  std::memcpy(&n, data, 4);
  if (n > size - 4) return 0;
  swarr::v1::WeightsHeader h;
  if (!h.ParseFromArray(data + 4, static_cast<int>(n))) return 0;
  swarr::WeightsBlob blob;
  blob.version = h.version();
  blob.config_json = h.config_json();
  blob.tensors.assign(h.tensors().begin(), h.tensors().end());
  blob.data.assign(reinterpret_cast<const char*>(data) + 4 + n, size - 4 - n);
  // The checksum the stream carried, or the data's own (to get past it to the table checks).
  blob.xxhash64 = (h.xxhash64() & 1) ? swarr::Xxh64(blob.data.data(), blob.data.size()) : h.xxhash64();
  (void)swarr::ValidateWeightsBlob(blob);
  return 0;
}
