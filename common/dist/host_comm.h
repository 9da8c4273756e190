// An in-process stand-in for an NCCL communicator, for CPU tests of the broadcast protocol:
// ranks are threads, a broadcast is a collective (it completes only when every rank has called
// it), and, as with NCCL, a rank that never arrives leaves the others waiting until their own
// abort (their watchdog) ends the wait. Abort is per rank, like ncclCommAbort on one member.
#ifndef SWARR_COMMON_DIST_HOST_COMM_H_
#define SWARR_COMMON_DIST_HOST_COMM_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "absl/status/status.h"

namespace swarr::dist {

class HostComm {
 public:
  explicit HostComm(int nranks);

  // The k-th call of every rank is collective k. Root's `buffer` is copied into every other
  // rank's. kAborted once this rank was aborted (before or while waiting); kInvalidArgument when
  // the ranks disagree on size or root.
  absl::Status Broadcast(int rank, void* buffer, size_t bytes, int root);
  void Abort(int rank);
  bool aborted(int rank) const;
  int nranks() const { return nranks_; }

 private:
  struct Collective {
    int arrived = 0;
    int copied = 0;
    int root = -1;
    size_t bytes = 0;
    const void* src = nullptr;
    bool mismatch = false;
  };
  const int nranks_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> next_;    // per rank: index of its next collective
  std::vector<bool> aborted_;
  std::map<int64_t, Collective> colls_;
};

}  // namespace swarr::dist

#endif  // SWARR_COMMON_DIST_HOST_COMM_H_
