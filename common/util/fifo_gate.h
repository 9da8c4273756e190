// A FIFO gate: at most `capacity` holders at once; the others wait in arrival order. The
// learner's GetWeights streams pass through one, so that N rollout servers asking for a new
// version at once are served a few at a time, first come first served, instead of all sharing
// the link and all finishing last (docs/weight-sync.md).
#ifndef SWARR_COMMON_UTIL_FIFO_GATE_H_
#define SWARR_COMMON_UTIL_FIFO_GATE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace swarr {

class FifoGate {
 public:
  // capacity >= 1.
  explicit FifoGate(int64_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  // Waits for a place, in arrival order, until `deadline`. True = entered (call Leave once).
  bool Enter(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t ticket = next_ticket_++;
    // Ticket t may enter once every earlier ticket has entered or given up, and a place is free.
    const bool ok = cv_.wait_until(lock, deadline, [&] { return ticket == next_entry_ && inside_ < capacity_; });
    if (!ok) {
      // Give up without blocking later tickets: mark this one as skipped.
      skipped_.push_back(ticket);
      AdvanceLocked();
      cv_.notify_all();
      return false;
    }
    ++inside_;
    ++next_entry_;
    AdvanceLocked();
    cv_.notify_all();
    return true;
  }
  void Leave() {
    std::lock_guard<std::mutex> lock(mu_);
    --inside_;
    cv_.notify_all();
  }
  int64_t inside() const {
    std::lock_guard<std::mutex> lock(mu_);
    return inside_;
  }
  int64_t waiting() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(next_ticket_ - next_entry_) - static_cast<int64_t>(skipped_.size());
  }

 private:
  // Moves next_entry_ past tickets that gave up.
  void AdvanceLocked() {
    bool moved = true;
    while (moved) {
      moved = false;
      for (size_t i = 0; i < skipped_.size(); ++i) {
        if (skipped_[i] == next_entry_) {
          skipped_.erase(skipped_.begin() + static_cast<std::ptrdiff_t>(i));
          ++next_entry_;
          moved = true;
          break;
        }
      }
    }
  }

  const int64_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_ticket_ = 0, next_entry_ = 0;
  int64_t inside_ = 0;
  std::vector<uint64_t> skipped_;
};

// Enter/Leave as a scope.
class FifoGateHold {
 public:
  FifoGateHold(FifoGate* gate, std::chrono::steady_clock::time_point deadline)
      : gate_(gate), entered_(gate->Enter(deadline)) {}
  ~FifoGateHold() {
    if (entered_) gate_->Leave();
  }
  bool entered() const { return entered_; }

 private:
  FifoGate* gate_;
  bool entered_;
};

}  // namespace swarr

#endif  // SWARR_COMMON_UTIL_FIFO_GATE_H_
