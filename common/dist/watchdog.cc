#include "common/dist/watchdog.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace swarr::dist {

Watchdog::Watchdog(std::function<void(const std::string&)> on_timeout)
    : on_timeout_(std::move(on_timeout)), thread_([this] { Loop(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t Watchdog::Arm(std::chrono::milliseconds timeout, const std::string& what) {
  uint64_t token;
  {
    std::lock_guard<std::mutex> l(mu_);
    token = next_token_++;
    armed_[token] = {Clock::now() + timeout, what};
  }
  cv_.notify_all();
  return token;
}

bool Watchdog::Disarm(uint64_t token) {
  std::lock_guard<std::mutex> l(mu_);
  return armed_.erase(token) > 0;
}

int Watchdog::fired_count() const {
  std::lock_guard<std::mutex> l(mu_);
  return fired_;
}

std::string Watchdog::last_fired() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_fired_;
}

int Watchdog::armed_count() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int>(armed_.size());
}

void Watchdog::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    if (armed_.empty()) {
      cv_.wait(l, [&] { return stop_ || !armed_.empty(); });
      continue;
    }
    auto earliest = armed_.begin()->second.first;
    for (const auto& [token, entry] : armed_) earliest = std::min(earliest, entry.first);
    if (Clock::now() < earliest) {
      cv_.wait_until(l, earliest);
      continue;  // re-check: disarmed, new arms, stop
    }
    std::vector<std::string> due;
    const auto now = Clock::now();
    for (auto it = armed_.begin(); it != armed_.end();) {
      if (it->second.first <= now) {
        due.push_back(it->second.second);
        it = armed_.erase(it);
      } else {
        ++it;
      }
    }
    for (const std::string& what : due) {
      ++fired_;
      last_fired_ = what;
      // Unlocked: the callback (ncclCommAbort) may take a while, and Disarm must not wait on it.
      l.unlock();
      on_timeout_(what);
      l.lock();
    }
  }
}

}  // namespace swarr::dist
