// Receive-side staging of NCCL-broadcast versions (docs/multi-gpu.md, "Staging and swap").
//
// A rollout server receives a version's buckets on the communicator's side stream into a staging
// slot (one device buffer laid out by the BucketPlan), while decode keeps running on the model's
// current weights. When every bucket of the slot has arrived, the slot is kReady; between two
// decode steps the engine swaps it in through the existing in-place path (a device-to-device copy
// of each tensor view into the live parameters), after which the slot is free again.
//
// With two slots (double buffering) version v+1 can be received while v waits for its swap; a
// ready version that a newer one completes after is superseded (discarded unswapped: rollouts only
// ever want the newest). Pure state machine: no CUDA; the engine owns the buffers.
#ifndef SWARR_COMMON_DIST_STAGING_H_
#define SWARR_COMMON_DIST_STAGING_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarr::dist {

class StagingSlots {
 public:
  enum class State { kFree, kReceiving, kReady };

  // `num_slots` is 1 or 2; `live_version` is what the model holds now (bootstrapped over gRPC).
  StagingSlots(int num_slots, int64_t live_version);

  // Starts receiving `version` (num_buckets buckets) into a free slot; returns the slot. Errors:
  // kInvalidArgument for a version not newer than the live one (or bad bucket count),
  // kFailedPrecondition if a receive is already in progress (one communicator, one broadcast at a
  // time) or no slot is free (single slot holding a ready version not swapped yet).
  absl::StatusOr<int> BeginReceive(int64_t version, int num_buckets);
  // Bucket `bucket` of the slot's version arrived (its broadcast completed on the side stream).
  // kInvalidArgument for an unknown bucket, kAlreadyExists for one received twice.
  absl::Status BucketDone(int slot, int bucket);
  // All buckets in: kReady. A ready slot of an older version, if any, is superseded (freed);
  // returns the superseded version, if there was one.
  absl::StatusOr<std::optional<int64_t>> CompleteReceive(int slot);
  // The watchdog aborted the broadcast: the slot is freed; the version comes over gRPC.
  absl::Status AbortReceive(int slot);

  // Between decode steps: the ready slot (if any) to swap in now. SwapDone(slot) after the copy.
  std::optional<int> SlotToSwap() const;
  absl::Status SwapDone(int slot);

  int64_t live_version() const { return live_version_; }
  State state(int slot) const { return slots_[slot].state; }
  int64_t version(int slot) const { return slots_[slot].version; }
  int num_slots() const { return static_cast<int>(slots_.size()); }

 private:
  struct Slot {
    State state = State::kFree;
    int64_t version = 0;
    std::vector<bool> received;
    int received_count = 0;
  };
  absl::Status CheckSlot(int slot, State expected) const;

  std::vector<Slot> slots_;
  int64_t live_version_;
};

}  // namespace swarr::dist

#endif  // SWARR_COMMON_DIST_STAGING_H_
