// The same-host weight path (docs/weight-sync.md) on the CPU: what DecodeIpcWeights checks of
// a device copy, and that the engine uses the device fetcher when it works and falls back to
// GetWeights when it does not. (The CUDA IPC map itself needs a GPU: bench/gpu/rehearsal.sh.)
#include "rollout_server/weights_ipc.h"

#include <cstring>
#include <future>

#include <ATen/ATen.h>

#include "common/model/cuda_ipc.h"
#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "rollout_server/engine.h"
#include "rollout_server/test_fakes.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using testing_fakes::BlobOf;
using testing_fakes::Version;

// What the learner exports: the blob's table and config, the data in a (here CPU) buffer
// zero-padded to 4 bytes, and the word sum computed independently of WordSum.
v1::CudaIpcWeights MetaOf(const WeightsBlob& blob, at::Tensor* bytes) {
  v1::CudaIpcWeights m;
  *m.mutable_version() = blob.version;
  m.set_config_json(blob.config_json);
  for (const auto& h : blob.tensors) *m.add_tensors() = h;
  m.set_total_bytes(static_cast<int64_t>(blob.data.size()));
  m.set_host_id(HostId());
  const size_t padded = (blob.data.size() + 3) / 4 * 4;
  *bytes = at::zeros({static_cast<int64_t>(padded)}, at::kByte);
  std::memcpy(bytes->data_ptr(), blob.data.data(), blob.data.size());
  uint64_t sum = 0;
  const auto* p = static_cast<const uint8_t*>(bytes->data_ptr());
  for (size_t i = 0; i < padded; i += 4) {
    sum += static_cast<uint64_t>(p[i]) | static_cast<uint64_t>(p[i + 1]) << 8 | static_cast<uint64_t>(p[i + 2]) << 16 |
           static_cast<uint64_t>(p[i + 3]) << 24;
  }
  m.set_word_sum(sum);
  return m;
}

TEST(WeightsIpcTest, DecodesTheSameTensorsAsTheNetworkPath) {
  auto model = SharpRandomModel(TinyConfig({4, 0}, 0, 32), 3);
  const WeightsBlob blob = BlobOf(*model, Version(5));
  at::Tensor bytes;
  const v1::CudaIpcWeights meta = MetaOf(blob, &bytes);
  EXPECT_EQ(WordSum(bytes), meta.word_sum());  // the library's sum agrees with the loop above
  auto ipc = DecodeIpcWeights(meta, bytes);
  ASSERT_TRUE(ipc.ok()) << ipc.status();
  auto net = DecodeWeights(blob);
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_EQ(ipc->version.version(), 5);
  EXPECT_EQ(ipc->bytes, static_cast<int64_t>(blob.data.size()));
  ASSERT_EQ(ipc->tensors.size(), net->tensors.size());
  for (size_t i = 0; i < net->tensors.size(); ++i) {
    EXPECT_EQ(ipc->tensors[i].first, net->tensors[i].first);
    EXPECT_TRUE(at::equal(ipc->tensors[i].second, net->tensors[i].second)) << net->tensors[i].first;
  }
}

TEST(WeightsIpcTest, CorruptionAndBadTablesAreRefusedNamingTheTensor) {
  auto model = SharpRandomModel(TinyConfig({4}, 0, 32), 3);
  const WeightsBlob blob = BlobOf(*model, Version(2));
  at::Tensor bytes;
  const v1::CudaIpcWeights meta = MetaOf(blob, &bytes);
  // One flipped byte: the word sum differs.
  at::Tensor bad = bytes.clone();
  bad[7] = static_cast<uint8_t>(bad[7].item<uint8_t>() ^ 0x10);
  auto corrupt = DecodeIpcWeights(meta, bad);
  EXPECT_EQ(corrupt.status().code(), absl::StatusCode::kDataLoss) << corrupt.status();
  EXPECT_THAT(std::string(corrupt.status().message()), HasSubstr("word sum"));
  // A tensor past the end, overlapping tensors, a size that does not match the shape.
  v1::CudaIpcWeights past = meta;
  past.mutable_tensors(1)->set_offset(meta.total_bytes());
  EXPECT_THAT(std::string(DecodeIpcWeights(past, bytes).status().message()),
              HasSubstr("tensor '" + meta.tensors(1).name() + "': bytes"));
  v1::CudaIpcWeights overlap = meta;
  overlap.mutable_tensors(1)->set_offset(meta.tensors(0).offset());
  EXPECT_THAT(std::string(DecodeIpcWeights(overlap, bytes).status().message()), HasSubstr("overlap"));
  v1::CudaIpcWeights size = meta;
  size.mutable_tensors(0)->set_nbytes(meta.tensors(0).nbytes() - 2);
  EXPECT_THAT(std::string(DecodeIpcWeights(size, bytes).status().message()),
              HasSubstr("tensor '" + meta.tensors(0).name() + "'"));
  // A short copy.
  EXPECT_EQ(DecodeIpcWeights(meta, bytes.narrow(0, 0, 8)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WeightsIpcTest, ThisBuildWithoutAGpuReportsIpcUnavailable) {
  if (CudaIpcAvailable()) GTEST_SKIP() << "a GPU is visible: the map is exercised by bench/gpu/rehearsal.sh";
  EXPECT_EQ(IpcBuffer::Allocate("cuda:0", 16).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CopyFromIpc(std::string(64, '\0'), 16, "cuda:0").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(HostId().empty());
  EXPECT_EQ(HostId(), HostId());
}

struct EngineFixture {
  prometheus::Registry registry;
  RolloutMetrics metrics{registry};
  std::unique_ptr<RolloutEngine> engine;
  WeightsBlob blob;
  int network_calls = 0, device_calls = 0;
  EngineFixture() {
    EngineOptions o;
    o.max_sequences = 2;
    auto e = RolloutEngine::Create(o, &metrics);
    EXPECT_TRUE(e.ok()) << e.status();
    engine = *std::move(e);
    engine->SetFetcher([this](const v1::GetWeightsRequest&) -> absl::StatusOr<WeightsBlob> {
      ++network_calls;
      return blob;
    });
  }
  absl::StatusOr<LoadResult> Load(int64_t version) {
    std::promise<absl::StatusOr<LoadResult>> p;
    v1::GetWeightsRequest req;
    req.set_version(version);
    engine->RequestLoad(req, [&p](absl::StatusOr<LoadResult> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
};

TEST(WeightsIpcTest, EngineFallsBackToGetWeightsWhenTheHandoffFails) {
  EngineFixture f;
  auto model = SharpRandomModel(TinyConfig({4, 0}, 0, 32), 5);
  f.blob = BlobOf(*model, Version(1));
  // Another host (what a learner answers FAILED_PRECONDITION for): the network path loads it.
  f.engine->SetDeviceFetcher([&f](const v1::GetWeightsRequest&) -> absl::StatusOr<std::shared_ptr<DecodedWeights>> {
    ++f.device_calls;
    return absl::FailedPreconditionError("the caller's host h2/b is not the learner's (h1/a)");
  });
  auto r = f.Load(1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->ipc);
  EXPECT_EQ(r->loaded.version(), 1);
  EXPECT_EQ(f.device_calls, 1);
  EXPECT_EQ(f.network_calls, 1);
  EXPECT_EQ(f.engine->Stats().loaded.version(), 1);
}

TEST(WeightsIpcTest, EngineUsesTheDeviceCopyWhenItWorks) {
  EngineFixture f;
  auto v1_model = SharpRandomModel(TinyConfig({4, 0}, 0, 32), 5);
  f.blob = BlobOf(*v1_model, Version(1));
  ASSERT_TRUE(f.Load(1).ok());  // the first version over the network
  auto v2_model = SharpRandomModel(TinyConfig({4, 0}, 0, 32), 6);
  const WeightsBlob v2 = BlobOf(*v2_model, Version(2));
  f.engine->SetDeviceFetcher([&](const v1::GetWeightsRequest& req) -> absl::StatusOr<std::shared_ptr<DecodedWeights>> {
    ++f.device_calls;
    EXPECT_EQ(req.version(), 2);
    at::Tensor bytes;
    const v1::CudaIpcWeights meta = MetaOf(v2, &bytes);
    auto d = DecodeIpcWeights(meta, bytes);
    if (!d.ok()) return d.status();
    return std::make_shared<DecodedWeights>(*std::move(d));
  });
  auto r = f.Load(2);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ipc);
  EXPECT_EQ(r->loaded.version(), 2);
  EXPECT_EQ(f.network_calls, 1);  // only version 1's
  EXPECT_EQ(f.device_calls, 1);
  EXPECT_EQ(f.engine->Stats().loaded.version(), 2);
}

}  // namespace
}  // namespace swarr
