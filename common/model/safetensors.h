// Reading and writing safetensors files (https://github.com/huggingface/safetensors format):
// an 8-byte little-endian header length N, N bytes of JSON header, then the raw tensor bytes.
//
// No LibTorch here: tensors are plain byte views; common/model/weights.h converts them.
#ifndef SWARR_COMMON_MODEL_SAFETENSORS_H_
#define SWARR_COMMON_MODEL_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarr {

// Element types SWARR reads and writes. The names are the safetensors dtype strings.
enum class StDType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32" -> kF32 etc.; an unknown name is kInvalidArgument naming it.
absl::StatusOr<StDType> ParseStDType(const std::string& name);
const char* StDTypeName(StDType dtype);
size_t StDTypeSize(StDType dtype);

// A read-only view of one tensor inside a mapped file (or caller-owned memory).
// `data` stays valid while the owning SafetensorsFile lives.
struct TensorView {
  StDType dtype = StDType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
};

// One memory-mapped safetensors file with a fully validated header.
// Thread-safe for concurrent reads after Open().
class SafetensorsFile {
 public:
  // Maps `path` and validates: header length inside the file, JSON object, every entry
  // with a known dtype, non-negative shape, data_offsets [begin, end] with
  // end - begin == numel * dtype size, inside the data section, no two spans overlapping.
  // Each failure is kInvalidArgument (kNotFound for a missing file) naming path and tensor.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensor names in header order.
  const std::vector<std::string>& names() const { return names_; }
  bool Contains(const std::string& name) const { return tensors_.count(name) > 0; }
  // kNotFound naming the tensor and file if absent.
  absl::StatusOr<TensorView> Get(const std::string& name) const;
  // The optional "__metadata__" string map.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<std::string> names_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: `data` must hold numel(shape) * StDTypeSize(dtype) bytes.
struct NamedTensor {
  std::string name;
  TensorView view;
};

// Writes a safetensors file atomically (temporary file in the same directory + rename).
// The header is padded with spaces to a multiple of 8 bytes, tensors are laid out in the
// given order. Duplicate names or a byte count that does not match the shape are
// kInvalidArgument naming the tensor.
absl::Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// All tensors of a checkpoint directory: `model.safetensors`, or the shards listed in
// `model.safetensors.index.json` ("weight_map": tensor name -> shard file).
class CheckpointFiles {
 public:
  // kNotFound if the directory has neither file; kInvalidArgument for a malformed index,
  // a shard that fails to open, or a tensor the index places in a shard that lacks it.
  static absl::StatusOr<std::unique_ptr<CheckpointFiles>> Open(const std::string& dir);

  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  bool Contains(const std::string& name) const { return where_.count(name) > 0; }
  absl::StatusOr<TensorView> Get(const std::string& name) const;
  // File holding `name` (for error messages).
  std::string FileOf(const std::string& name) const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_SAFETENSORS_H_
