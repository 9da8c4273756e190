#include "common/model/safetensors.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  char tmpl[] = "/tmp/swarr_st_XXXXXX";
  return mkdtemp(tmpl);
}

// A file with a hand-written header and `data_bytes` zero bytes of data.
std::string RawFile(const std::string& dir, const std::string& header, size_t data_bytes,
                    int64_t header_len_override = -1) {
  std::string path = dir + "/raw.safetensors";
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header_len_override >= 0 ? static_cast<uint64_t>(header_len_override) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
  return path;
}

std::string OpenError(const std::string& path) {
  auto f = SafetensorsFile::Open(path);
  EXPECT_FALSE(f.ok());
  return f.ok() ? "" : std::string(f.status().message());
}

TEST(SafetensorsTest, RoundTripAllDtypes) {
  std::string dir = TempDir();
  std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::vector<uint16_t> f16 = {0x3c00, 0xc000};     // 1.0, -2.0
  std::vector<uint16_t> bf16 = {0x3f80, 0x4040, 0}; // 1.0, 3.0, 0
  std::vector<int64_t> i64 = {-5, 1LL << 40};
  auto view = [](StDType dt, std::vector<int64_t> shape, const void* p, size_t n) {
    TensorView v;
    v.dtype = dt;
    v.shape = std::move(shape);
    v.data = static_cast<const uint8_t*>(p);
    v.nbytes = n;
    return v;
  };
  std::vector<NamedTensor> tensors = {
      {"a.weight", view(StDType::kF32, {2, 3}, f32.data(), 24)},
      {"b", view(StDType::kF16, {2}, f16.data(), 4)},
      {"c", view(StDType::kBF16, {3, 1}, bf16.data(), 6)},
      {"ids", view(StDType::kI64, {1, 2}, i64.data(), 16)},
      {"empty", view(StDType::kF32, {0, 4}, nullptr, 0)},
  };
  const std::string path = dir + "/m.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->names().size(), 5u);
  for (const NamedTensor& t : tensors) {
    auto got = (*file)->Get(t.name);
    ASSERT_TRUE(got.ok()) << t.name;
    EXPECT_EQ(got->dtype, t.view.dtype) << t.name;
    EXPECT_EQ(got->shape, t.view.shape) << t.name;
    ASSERT_EQ(got->nbytes, t.view.nbytes) << t.name;
    if (t.view.nbytes) EXPECT_EQ(std::memcmp(got->data, t.view.data, t.view.nbytes), 0) << t.name;
  }
  // The data section starts 8-byte aligned, as the reference writer pads the header.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ((*file)->Get("missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsTest, WriterRejectsBadTensors) {
  std::string dir = TempDir();
  float x[2] = {0, 0};
  TensorView v;
  v.dtype = StDType::kF32;
  v.shape = {3};
  v.data = reinterpret_cast<const uint8_t*>(x);
  v.nbytes = 8;
  auto st = WriteSafetensors(dir + "/x.safetensors", {{"w", v}});
  EXPECT_THAT(std::string(st.message()), HasSubstr("'w'"));
  v.shape = {2};
  st = WriteSafetensors(dir + "/x.safetensors", {{"w", v}, {"w", v}});
  EXPECT_THAT(std::string(st.message()), HasSubstr("duplicate tensor 'w'"));
}

TEST(SafetensorsTest, TruncatedFile) {
  std::string dir = TempDir();
  float x[4] = {1, 2, 3, 4};
  TensorView v{StDType::kF32, {4}, reinterpret_cast<const uint8_t*>(x), 16};
  const std::string path = dir + "/t.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"w", v}}).ok());
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  // Cut inside the data section, then inside the header, then inside the length.
  for (size_t keep : {bytes.size() - 4, size_t{20}, size_t{5}}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, keep);
    std::string err = OpenError(path);
    EXPECT_THAT(err, HasSubstr(path)) << keep;
    if (keep == bytes.size() - 4) EXPECT_THAT(err, HasSubstr("outside the data section"));
    if (keep == 20) EXPECT_THAT(err, HasSubstr("truncated"));
    if (keep == 5) EXPECT_THAT(err, HasSubstr("too short"));
  }
}

TEST(SafetensorsTest, BadJsonHeader) {
  std::string dir = TempDir();
  EXPECT_THAT(OpenError(RawFile(dir, "{\"w\": {\"dtype\": \"F32\",", 0)), HasSubstr("not valid JSON"));
  EXPECT_THAT(OpenError(RawFile(dir, "[1, 2]", 0)), HasSubstr("not a JSON object"));
  EXPECT_THAT(OpenError(RawFile(dir, R"({"w": {"dtype": "F32", "shape": [1]}})", 4)),
              HasSubstr("data_offsets"));
  EXPECT_THAT(OpenError(RawFile(dir, R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4)),
              HasSubstr("negative"));
}

TEST(SafetensorsTest, OffsetsOutsideFile) {
  std::string dir = TempDir();
  std::string err = OpenError(RawFile(dir, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8));
  EXPECT_THAT(err, HasSubstr("tensor 'w'"));
  EXPECT_THAT(err, HasSubstr("outside the data section"));
}

TEST(SafetensorsTest, OverlappingSpans) {
  std::string dir = TempDir();
  std::string err = OpenError(RawFile(
      dir,
      R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
      16));
  EXPECT_THAT(err, HasSubstr("overlap"));
  EXPECT_THAT(err, HasSubstr("'a'"));
  EXPECT_THAT(err, HasSubstr("'b'"));
}

TEST(SafetensorsTest, DtypeShapeMismatch) {
  std::string dir = TempDir();
  std::string err = OpenError(RawFile(dir, R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 24]}})", 24));
  EXPECT_THAT(err, HasSubstr("tensor 'w'"));
  EXPECT_THAT(err, HasSubstr("needs 12 bytes"));
  err = OpenError(RawFile(dir, R"({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}})", 2));
  EXPECT_THAT(err, HasSubstr("unsupported safetensors dtype 'Q4'"));
}

TEST(SafetensorsTest, HugeHeaderLength) {
  std::string dir = TempDir();
  EXPECT_THAT(OpenError(RawFile(dir, "{}", 0, int64_t{1} << 40)), HasSubstr("exceeds the limit"));
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  auto f = SafetensorsFile::Open("/nonexistent/x.safetensors");
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsTest, RandomCorruptionNeverCrashes) {
  // Byte flips and truncations of a valid file: Open either fails cleanly or yields views
  // that lie inside the file.
  std::string dir = TempDir();
  std::vector<float> a(40, 1.5f);
  std::vector<int64_t> b(7, 3);
  const std::string path = dir + "/v.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"a", {StDType::kF32, {5, 8}, reinterpret_cast<const uint8_t*>(a.data()), 160}},
                                      {"b", {StDType::kI64, {7}, reinterpret_cast<const uint8_t*>(b.data()), 56}}})
                  .ok());
  std::ifstream in(path, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), {});
  std::mt19937 rng(123);
  int opened = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly the length and header, where parsing happens.
      const size_t pos = rng() % 3 == 0 ? rng() % bytes.size() : rng() % std::min<size_t>(bytes.size(), 120);
      bytes[pos] = static_cast<char>(rng());
    }
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    const std::string p = dir + "/c.safetensors";
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
    auto f = SafetensorsFile::Open(p);
    if (!f.ok()) {
      EXPECT_FALSE(f.status().message().empty());
      continue;
    }
    ++opened;
    for (const std::string& name : (*f)->names()) {
      auto v = (*f)->Get(name);
      ASSERT_TRUE(v.ok());
      volatile uint8_t sink = 0;
      for (size_t i = 0; i < v->nbytes; ++i) sink ^= v->data[i];  // touches every byte (ASan/valgrind)
      (void)sink;
    }
  }
  EXPECT_GT(opened, 0);  // some flips land in tensor data and leave the header valid
}

TEST(CheckpointFilesTest, ShardedIndex) {
  std::string dir = TempDir();
  float a[2] = {1, 2}, b[3] = {3, 4, 5};
  TensorView va{StDType::kF32, {2}, reinterpret_cast<const uint8_t*>(a), 8};
  TensorView vb{StDType::kF32, {3}, reinterpret_cast<const uint8_t*>(b), 12};
  ASSERT_TRUE(WriteSafetensors(dir + "/model-00001-of-00002.safetensors", {{"x.a", va}}).ok());
  ASSERT_TRUE(WriteSafetensors(dir + "/model-00002-of-00002.safetensors", {{"x.b", vb}}).ok());
  std::ofstream(dir + "/model.safetensors.index.json")
      << R"({"metadata": {"total_size": 20}, "weight_map": {"x.a": "model-00001-of-00002.safetensors",
            "x.b": "model-00002-of-00002.safetensors"}})";
  auto files = CheckpointFiles::Open(dir);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ((*files)->names(), (std::vector<std::string>{"x.a", "x.b"}));
  auto got = (*files)->Get("x.b");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(reinterpret_cast<const float*>(got->data)[2], 5.0f);

  // An index that places a tensor in the wrong shard names both.
  std::ofstream(dir + "/model.safetensors.index.json", std::ios::trunc)
      << R"({"weight_map": {"x.a": "model-00002-of-00002.safetensors"}})";
  files = CheckpointFiles::Open(dir);
  ASSERT_FALSE(files.ok());
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("'x.a'"));
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("model-00002-of-00002.safetensors"));

  std::ofstream(dir + "/model.safetensors.index.json", std::ios::trunc)
      << R"({"weight_map": {"x.a": "gone.safetensors"}})";
  files = CheckpointFiles::Open(dir);
  ASSERT_FALSE(files.ok());
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("gone.safetensors"));
}

TEST(CheckpointFilesTest, EmptyDirectory) {
  auto files = CheckpointFiles::Open(TempDir());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace swarr
