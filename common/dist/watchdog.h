// A deadline watchdog: operations arm it with a timeout; if one is still armed when its deadline
// passes, the watchdog's thread calls `on_timeout` (once per operation) with the operation's name.
// NcclComm arms it around communicator init and every broadcast, with a callback that calls
// ncclCommAbort: a peer that died mid-collective then cannot hang this process (the abort makes
// the waiting NCCL calls return), and the caller reports the abort and falls back to gRPC.
//
// Pure C++ (a thread and a condition variable); tested on CPU with a fake abort.
#ifndef SWARR_COMMON_DIST_WATCHDOG_H_
#define SWARR_COMMON_DIST_WATCHDOG_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace swarr::dist {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Watchdog(std::function<void(const std::string& what)> on_timeout);
  ~Watchdog();  // stops the thread; armed operations never fire after this
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Arms for one operation; returns its token.
  uint64_t Arm(std::chrono::milliseconds timeout, const std::string& what);
  // Disarms; true if it had not fired (the operation finished in time).
  bool Disarm(uint64_t token);

  int fired_count() const;
  std::string last_fired() const;
  int armed_count() const;

  // Arms in the constructor, disarms in the destructor (or Done()).
  class Scope {
   public:
    Scope(Watchdog& dog, std::chrono::milliseconds timeout, const std::string& what)
        : dog_(dog), token_(dog.Arm(timeout, what)) {}
    ~Scope() { Done(); }
    bool Done() {
      if (done_) return in_time_;
      done_ = true;
      in_time_ = dog_.Disarm(token_);
      return in_time_;
    }

   private:
    Watchdog& dog_;
    uint64_t token_;
    bool done_ = false, in_time_ = true;
  };

 private:
  void Loop();

  std::function<void(const std::string&)> on_timeout_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, std::pair<Clock::time_point, std::string>> armed_;
  uint64_t next_token_ = 1;
  int fired_ = 0;
  std::string last_fired_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace swarr::dist

#endif  // SWARR_COMMON_DIST_WATCHDOG_H_
