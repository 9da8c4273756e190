// The weight-transfer wire format of Learner.GetWeights (docs/services.md "Weight versions"):
// a WeightsHeader (config.json text, tensor table, total length, XXH64 of all bytes), then
// WeightsData chunks in order, each with its own XXH64. Both ends live here so they cannot
// drift apart. No torch: tensors are byte ranges of one concatenation.
#ifndef SWARR_COMMON_RPC_WEIGHTS_WIRE_H_
#define SWARR_COMMON_RPC_WEIGHTS_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <grpcpp/support/sync_stream.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/rpc/service_options.h"
#include "proto/swarr/v1/learner.grpc.pb.h"

namespace swarr {

// One published weight version, serialized.
struct WeightsBlob {
  v1::WeightVersion version;
  std::string config_json;
  std::vector<v1::TensorHeader> tensors;  // offsets/lengths into `data`, in order
  std::string data;                       // every tensor's bytes, concatenated
  uint64_t xxhash64 = 0;                  // Xxh64 of `data`
};

// XXH64 with seed 0.
uint64_t Xxh64(const void* data, size_t n);

// Checks one tensor table entry: a known dtype, a sane shape, and nbytes equal to the shape's
// element count times the dtype's size. Returns the element size, or kInvalidArgument naming
// the tensor. Used by every decoder of a tensor table (the stream here, CUDA IPC's).
absl::StatusOr<int64_t> CheckTensorHeader(const v1::TensorHeader& t);

// Checks the tensor table against `data` (ranges inside, no overlap, known dtype, byte count
// matching the shape) and the checksum. kDataLoss / kInvalidArgument naming the tensor.
absl::Status ValidateWeightsBlob(const WeightsBlob& blob);

// Server side: the header, then chunks of at most `chunk_bytes`. kUnavailable if the client
// went away mid-stream.
absl::Status WriteWeightsStream(const WeightsBlob& blob, int64_t chunk_bytes,
                                grpc::ServerWriterInterface<v1::WeightsChunk>* writer);

// Client side: reads a whole stream (not its final status) and verifies the header, every
// chunk's checksum and offset, the total length and checksum, and the tensor table.
// kDataLoss names the chunk (offset) or tensor that did not match.
absl::StatusOr<WeightsBlob> ReadWeightsStream(grpc::ClientReaderInterface<v1::WeightsChunk>* reader);

// Calls Learner.GetWeights and reads the stream; the call's own error (NOT_FOUND,
// FAILED_PRECONDITION, UNAVAILABLE, ...) is returned as is.
absl::StatusOr<WeightsBlob> FetchWeights(v1::Learner::StubInterface& stub, const v1::GetWeightsRequest& request,
                                         const RpcSecurity& security, const RpcLimits& limits,
                                         double deadline_seconds);

}  // namespace swarr

#endif  // SWARR_COMMON_RPC_WEIGHTS_WIRE_H_
