#include "common/dist/staging.h"

#include "absl/strings/str_cat.h"

namespace swarr::dist {
namespace {
const char* Name(StagingSlots::State s) {
  switch (s) {
    case StagingSlots::State::kFree: return "free";
    case StagingSlots::State::kReceiving: return "receiving";
    case StagingSlots::State::kReady: return "ready";
  }
  return "?";
}
}  // namespace

StagingSlots::StagingSlots(int num_slots, int64_t live_version)
    : slots_(num_slots < 1 ? 1 : (num_slots > 2 ? 2 : num_slots)), live_version_(live_version) {}

absl::Status StagingSlots::CheckSlot(int slot, State expected) const {
  if (slot < 0 || slot >= num_slots()) return absl::InvalidArgumentError(absl::StrCat("no staging slot ", slot));
  if (slots_[slot].state != expected) {
    return absl::FailedPreconditionError(absl::StrCat("staging slot ", slot, " is ", Name(slots_[slot].state),
                                                      ", not ", Name(expected)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> StagingSlots::BeginReceive(int64_t version, int num_buckets) {
  if (num_buckets < 1) return absl::InvalidArgumentError(absl::StrCat("num_buckets ", num_buckets));
  if (version <= live_version_) {
    return absl::InvalidArgumentError(
        absl::StrCat("version ", version, " is not newer than the live version ", live_version_));
  }
  int free_slot = -1;
  for (int s = 0; s < num_slots(); ++s) {
    if (slots_[s].state == State::kReceiving) {
      return absl::FailedPreconditionError(
          absl::StrCat("slot ", s, " is still receiving version ", slots_[s].version));
    }
    if (slots_[s].state == State::kReady && slots_[s].version >= version) {
      return absl::InvalidArgumentError(
          absl::StrCat("version ", version, " is not newer than the staged version ", slots_[s].version));
    }
    if (slots_[s].state == State::kFree && free_slot < 0) free_slot = s;
  }
  if (free_slot < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no free staging slot for version ", version, ": swap the ready one first"));
  }
  Slot& slot = slots_[free_slot];
  slot.state = State::kReceiving;
  slot.version = version;
  slot.received.assign(num_buckets, false);
  slot.received_count = 0;
  return free_slot;
}

absl::Status StagingSlots::BucketDone(int slot, int bucket) {
  if (absl::Status s = CheckSlot(slot, State::kReceiving); !s.ok()) return s;
  Slot& sl = slots_[slot];
  if (bucket < 0 || bucket >= static_cast<int>(sl.received.size())) {
    return absl::InvalidArgumentError(absl::StrCat("bucket ", bucket, " of ", sl.received.size()));
  }
  if (sl.received[bucket]) return absl::AlreadyExistsError(absl::StrCat("bucket ", bucket, " received twice"));
  sl.received[bucket] = true;
  ++sl.received_count;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> StagingSlots::CompleteReceive(int slot) {
  if (absl::Status s = CheckSlot(slot, State::kReceiving); !s.ok()) return s;
  Slot& sl = slots_[slot];
  if (sl.received_count != static_cast<int>(sl.received.size())) {
    return absl::FailedPreconditionError(absl::StrCat("version ", sl.version, ": ", sl.received_count, " of ",
                                                      sl.received.size(), " buckets received"));
  }
  std::optional<int64_t> superseded;
  for (int s = 0; s < num_slots(); ++s) {
    if (s != slot && slots_[s].state == State::kReady) {
      superseded = slots_[s].version;
      slots_[s] = Slot();
    }
  }
  sl.state = State::kReady;
  return superseded;
}

absl::Status StagingSlots::AbortReceive(int slot) {
  if (absl::Status s = CheckSlot(slot, State::kReceiving); !s.ok()) return s;
  slots_[slot] = Slot();
  return absl::OkStatus();
}

std::optional<int> StagingSlots::SlotToSwap() const {
  for (int s = 0; s < num_slots(); ++s) {
    if (slots_[s].state == State::kReady) return s;
  }
  return std::nullopt;
}

absl::Status StagingSlots::SwapDone(int slot) {
  if (absl::Status s = CheckSlot(slot, State::kReady); !s.ok()) return s;
  live_version_ = slots_[slot].version;
  slots_[slot] = Slot();
  return absl::OkStatus();
}

}  // namespace swarr::dist
