// An NCCL communicator for the weight broadcast (docs/multi-gpu.md, "Data plane"). Built only with
// -DSWARR_WITH_NCCL=ON (needs CUDA and libnccl; CI has no GPU, a ctest only compiles it).
//
// - Non-blocking communicator (ncclConfig_t.blocking = 0): init and collectives return at once and
//   are polled, so a dead peer can never wedge the calling thread.
// - Every operation (init, each broadcast) is armed on a Watchdog; past the timeout it calls
//   ncclCommAbort, the operation returns kDeadlineExceeded, and the communicator is unusable: the
//   caller reports the abort (GroupMembership::ReportAborted) and loads the version over gRPC.
// - Broadcasts run on the communicator's own side stream (non-blocking, so the decode stream keeps
//   running) into the caller's staging buffer.
// - NCCL's NVLink multicast (NVLS) is forced off (NCCL_NVLS_ENABLE=0) before the first init: on
//   shared hosts it can put the GPUs out of service (shared/device/README.md).
//
// The header names no CUDA or NCCL type, so code that holds an NcclComm needs neither header.
#ifndef SWARR_COMMON_DIST_NCCL_COMM_H_
#define SWARR_COMMON_DIST_NCCL_COMM_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarr::dist {

struct NcclCommOptions {
  int device = 0;                                    // CUDA device of this rank
  std::chrono::milliseconds timeout{10'000};         // watchdog timeout per operation
  std::chrono::microseconds poll_interval{100};      // how often a wait polls the stream / NCCL
};

class NcclComm {
 public:
  // The publisher's ncclGetUniqueId, as bytes (128) for the control plane.
  static absl::StatusOr<std::string> NewUniqueId();

  // Joins the communicator of `unique_id` as `rank` of `nranks` (all ranks call it; it returns when
  // all have joined or the timeout aborts it).
  static absl::StatusOr<std::unique_ptr<NcclComm>> Create(const std::string& unique_id, int nranks, int rank,
                                                          const NcclCommOptions& options);
  ~NcclComm();  // ncclCommDestroy (or nothing more if aborted); frees the stream and event
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  // Enqueues a broadcast of `bytes` bytes of device memory `buffer` from `root` (the root's buffer
  // is sent, every other rank's is overwritten) on the side stream and arms the watchdog.
  absl::Status BroadcastAsync(void* buffer, size_t bytes, int root);
  // Waits for the broadcast enqueued last: OK, kDeadlineExceeded (the watchdog aborted it), or
  // kInternal / kUnavailable naming NCCL's or CUDA's error (the communicator is aborted too).
  absl::Status Wait();
  // BroadcastAsync + Wait.
  absl::Status Broadcast(void* buffer, size_t bytes, int root);

  // Aborts the communicator (idempotent, any thread): every pending and later operation fails.
  void Abort();
  bool aborted() const;

  int rank() const;
  int nranks() const;
  // The side stream (a cudaStream_t), for callers that order their own work after a bucket.
  void* stream() const;

 private:
  struct Impl;
  explicit NcclComm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace swarr::dist

#endif  // SWARR_COMMON_DIST_NCCL_COMM_H_
