// Weights over a real gRPC stream: round trip, corruption in flight, truncation and the
// server's own errors.
#include "common/rpc/weights_wire.h"

#include <cstring>
#include <random>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

WeightsBlob MakeBlob(int64_t floats_a, int64_t floats_b) {
  WeightsBlob b;
  b.version.set_version(7);
  b.version.set_learner_incarnation("inc-1");
  b.config_json = R"({"model_type": "llama"})";
  std::mt19937 rng(3);
  int64_t offset = 0;
  for (auto [name, n] : {std::pair<std::string, int64_t>{"a.weight", floats_a}, {"b.weight", floats_b}}) {
    v1::TensorHeader t;
    t.set_name(name);
    t.set_dtype("F32");
    t.add_shape(n);
    t.set_offset(offset);
    t.set_nbytes(n * 4);
    offset += n * 4;
    b.tensors.push_back(t);
    for (int64_t i = 0; i < n; ++i) {
      const float v = static_cast<float>(rng()) / 1e9f;
      b.data.append(reinterpret_cast<const char*>(&v), 4);
    }
  }
  b.xxhash64 = Xxh64(b.data.data(), b.data.size());
  return b;
}

enum class Fault { kNone, kFlipByte, kDropLastChunk, kNotFound };

class FakeLearner final : public v1::Learner::Service {
 public:
  FakeLearner(WeightsBlob blob, Fault fault) : blob_(std::move(blob)), fault_(fault) {}
  grpc::Status GetWeights(grpc::ServerContext*, const v1::GetWeightsRequest* req,
                          grpc::ServerWriter<v1::WeightsChunk>* writer) override {
    if (fault_ == Fault::kNotFound) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("version ", req->version(), " was never published"));
    }
    if (fault_ == Fault::kNone) {
      EXPECT_TRUE(WriteWeightsStream(blob_, 1000, writer).ok());
      return grpc::Status::OK;
    }
    // A faulty sender: record what WriteWeightsStream sends, then damage it.
    RecordingWriter rec;
    EXPECT_TRUE(WriteWeightsStream(blob_, 1000, &rec).ok());
    if (fault_ == Fault::kFlipByte) (*rec.msgs[2].mutable_data()->mutable_data())[10] ^= 1;
    if (fault_ == Fault::kDropLastChunk) rec.msgs.pop_back();
    for (const auto& m : rec.msgs) writer->Write(m);
    return grpc::Status::OK;
  }

 private:
  struct RecordingWriter : grpc::ServerWriterInterface<v1::WeightsChunk> {
    std::vector<v1::WeightsChunk> msgs;
    void SendInitialMetadata() override {}
    bool Write(const v1::WeightsChunk& msg, grpc::WriteOptions) override {
      msgs.push_back(msg);
      return true;
    }
  };
  WeightsBlob blob_;
  Fault fault_;
};

absl::StatusOr<WeightsBlob> FetchFrom(const WeightsBlob& blob, Fault fault) {
  FakeLearner service(blob, fault);
  RpcSecurity sec;
  RpcLimits limits;
  auto server = StartServer("127.0.0.1:0", {&service}, sec, limits);
  EXPECT_TRUE(server.ok());
  auto channel = MakeChannel(absl::StrCat("127.0.0.1:", server->port), sec, limits);
  auto stub = v1::Learner::NewStub(*channel);
  v1::GetWeightsRequest req;
  req.set_version(7);
  auto out = FetchWeights(*stub, req, sec, limits, 10);
  server->server->Shutdown();
  return out;
}

TEST(WeightsWireTest, RoundTripInChunks) {
  const WeightsBlob blob = MakeBlob(1000, 777);  // 7108 bytes: 8 chunks of <= 1000
  auto got = FetchFrom(blob, Fault::kNone);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->data, blob.data);
  EXPECT_EQ(got->config_json, blob.config_json);
  EXPECT_EQ(got->version.version(), 7);
  EXPECT_EQ(got->version.learner_incarnation(), "inc-1");
  ASSERT_EQ(got->tensors.size(), 2u);
  EXPECT_EQ(got->tensors[1].name(), "b.weight");
  EXPECT_EQ(got->tensors[1].offset(), 4000);
}

TEST(WeightsWireTest, CorruptionAndTruncationAreDataLoss) {
  const WeightsBlob blob = MakeBlob(1000, 777);
  auto flipped = FetchFrom(blob, Fault::kFlipByte);
  EXPECT_EQ(flipped.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(flipped.status().message().find("offset 1000"), std::string::npos) << flipped.status();
  auto truncated = FetchFrom(blob, Fault::kDropLastChunk);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss) << truncated.status();
}

TEST(WeightsWireTest, ServerErrorsPassThrough) {
  auto nf = FetchFrom(MakeBlob(10, 10), Fault::kNotFound);
  EXPECT_EQ(nf.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(nf.status().message().find("never published"), std::string::npos);
}

TEST(WeightsWireTest, ValidateNamesTheBadTensor) {
  WeightsBlob b = MakeBlob(4, 4);
  EXPECT_TRUE(ValidateWeightsBlob(b).ok());
  b.tensors[1].set_nbytes(12);
  EXPECT_NE(ValidateWeightsBlob(b).message().find("b.weight"), std::string::npos);
  b = MakeBlob(4, 4);
  b.tensors[0].set_dtype("F8");
  EXPECT_NE(ValidateWeightsBlob(b).message().find("unknown dtype"), std::string::npos);
  b = MakeBlob(4, 4);
  b.data[0] ^= 1;
  EXPECT_EQ(ValidateWeightsBlob(b).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace swarr
