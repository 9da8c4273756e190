#include "common/rpc/weights_wire.h"

#include <algorithm>

#include <grpcpp/client_context.h>
#include <xxhash.h>

#include "absl/strings/str_cat.h"
#include "common/rpc/status.h"

namespace swarr {
namespace {

// Bytes per element of a safetensors dtype name; 0 for an unknown one.
int64_t DtypeBytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

}  // namespace

uint64_t Xxh64(const void* data, size_t n) { return XXH64(data, n, 0); }

absl::StatusOr<int64_t> CheckTensorHeader(const v1::TensorHeader& t) {
  const int64_t elem = DtypeBytes(t.dtype());
  if (elem == 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name(), "': unknown dtype '", t.dtype(), "'"));
  int64_t numel = 1;
  for (int64_t d : t.shape()) {
    if (d < 0 || (d > 0 && numel > (int64_t{1} << 40) / d)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name(), "': bad shape"));
    }
    numel *= d;
  }
  if (t.nbytes() != numel * elem) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name(), "': ", t.nbytes(),
                                                   " bytes do not match its shape (", numel, " elements of ", t.dtype(),
                                                   " = ", numel * elem, " bytes)"));
  }
  return elem;
}

absl::Status ValidateWeightsBlob(const WeightsBlob& blob) {
  int64_t expected_offset = 0;
  for (const v1::TensorHeader& t : blob.tensors) {
    if (absl::StatusOr<int64_t> elem = CheckTensorHeader(t); !elem.ok()) return elem.status();
    if (t.offset() != expected_offset) {
      return absl::DataLossError(
          absl::StrCat("tensor '", t.name(), "': offset ", t.offset(), ", expected ", expected_offset));
    }
    expected_offset += t.nbytes();
  }
  if (expected_offset != static_cast<int64_t>(blob.data.size())) {
    return absl::DataLossError(
        absl::StrCat("weights: tensors cover ", expected_offset, " bytes, received ", blob.data.size()));
  }
  if (Xxh64(blob.data.data(), blob.data.size()) != blob.xxhash64) {
    return absl::DataLossError("weights: checksum of the whole transfer does not match");
  }
  return absl::OkStatus();
}

absl::Status WriteWeightsStream(const WeightsBlob& blob, int64_t chunk_bytes,
                                grpc::ServerWriterInterface<v1::WeightsChunk>* writer) {
  chunk_bytes = std::max<int64_t>(chunk_bytes, 1);
  v1::WeightsChunk first;
  v1::WeightsHeader* h = first.mutable_header();
  *h->mutable_version() = blob.version;
  h->set_config_json(blob.config_json);
  for (const v1::TensorHeader& t : blob.tensors) *h->add_tensors() = t;
  h->set_total_bytes(static_cast<int64_t>(blob.data.size()));
  h->set_xxhash64(blob.xxhash64);
  if (!writer->Write(first)) return absl::UnavailableError("weights: client went away before the header");
  const int64_t total = static_cast<int64_t>(blob.data.size());
  v1::WeightsChunk chunk;
  for (int64_t off = 0; off < total; off += chunk_bytes) {
    const int64_t n = std::min(chunk_bytes, total - off);
    v1::WeightsData* d = chunk.mutable_data();
    d->set_offset(off);
    d->mutable_data()->assign(blob.data.data() + off, static_cast<size_t>(n));
    d->set_xxhash64(Xxh64(blob.data.data() + off, static_cast<size_t>(n)));
    if (!writer->Write(chunk)) {
      return absl::UnavailableError(absl::StrCat("weights: client went away at offset ", off));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<WeightsBlob> ReadWeightsStream(grpc::ClientReaderInterface<v1::WeightsChunk>* reader) {
  WeightsBlob blob;
  v1::WeightsChunk msg;
  if (!reader->Read(&msg)) return absl::UnavailableError("weights: stream ended before the header");
  if (!msg.has_header()) return absl::DataLossError("weights: the first message is not a header");
  v1::WeightsHeader* h = msg.mutable_header();
  if (h->total_bytes() < 0 || h->total_bytes() > (int64_t{1} << 40)) {
    return absl::DataLossError(absl::StrCat("weights: implausible total_bytes ", h->total_bytes()));
  }
  blob.version = h->version();
  blob.config_json = std::move(*h->mutable_config_json());
  blob.tensors.assign(h->tensors().begin(), h->tensors().end());
  blob.xxhash64 = h->xxhash64();
  const int64_t total = h->total_bytes();
  blob.data.reserve(static_cast<size_t>(total));
  while (reader->Read(&msg)) {
    if (!msg.has_data()) return absl::DataLossError("weights: a second header in the stream");
    const v1::WeightsData& d = msg.data();
    if (d.offset() != static_cast<int64_t>(blob.data.size())) {
      return absl::DataLossError(
          absl::StrCat("weights: chunk at offset ", d.offset(), ", expected ", blob.data.size()));
    }
    if (Xxh64(d.data().data(), d.data().size()) != d.xxhash64()) {
      return absl::DataLossError(absl::StrCat("weights: checksum mismatch in the chunk at offset ", d.offset()));
    }
    if (static_cast<int64_t>(blob.data.size() + d.data().size()) > total) {
      return absl::DataLossError(absl::StrCat("weights: more bytes than the header's ", total));
    }
    blob.data.append(d.data());
  }
  if (static_cast<int64_t>(blob.data.size()) != total) {
    return absl::DataLossError(absl::StrCat("weights: received ", blob.data.size(), " of ", total, " bytes"));
  }
  if (absl::Status s = ValidateWeightsBlob(blob); !s.ok()) return s;
  return blob;
}

absl::StatusOr<WeightsBlob> FetchWeights(v1::Learner::StubInterface& stub, const v1::GetWeightsRequest& request,
                                         const RpcSecurity& security, const RpcLimits& limits,
                                         double deadline_seconds) {
  grpc::ClientContext ctx;
  PrepareContext(&ctx, security, limits, deadline_seconds);
  std::unique_ptr<grpc::ClientReaderInterface<v1::WeightsChunk>> reader = stub.GetWeights(&ctx, request);
  absl::StatusOr<WeightsBlob> blob = ReadWeightsStream(reader.get());
  if (!blob.ok()) {
    // Read what is left so Finish returns the server's status (not a cancellation): a
    // stream that ended early is explained by the server's own error (NOT_FOUND, ...).
    v1::WeightsChunk rest;
    while (reader->Read(&rest)) {
    }
    const grpc::Status call = reader->Finish();
    if (!call.ok()) return FromGrpcStatus(call);
    return blob.status();
  }
  const grpc::Status call = reader->Finish();
  if (!call.ok()) return FromGrpcStatus(call);
  return blob;
}

}  // namespace swarr
