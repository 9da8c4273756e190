#include "common/dist/host_comm.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace swarr::dist {

HostComm::HostComm(int nranks) : nranks_(nranks), next_(nranks, 0), aborted_(nranks, false) {}

absl::Status HostComm::Broadcast(int rank, void* buffer, size_t bytes, int root) {
  std::unique_lock<std::mutex> l(mu_);
  auto aborted = [&] { return absl::AbortedError(absl::StrCat("host communicator aborted on rank ", rank)); };
  if (aborted_[rank]) return aborted();
  const int64_t k = next_[rank]++;
  Collective& c = colls_[k];
  if (c.arrived == 0) {
    c.root = root;
    c.bytes = bytes;
  } else if (c.root != root || c.bytes != bytes) {
    c.mismatch = true;
  }
  if (rank == root) c.src = buffer;
  ++c.arrived;
  cv_.notify_all();
  cv_.wait(l, [&] { return aborted_[rank] || c.arrived == nranks_; });
  if (aborted_[rank]) return aborted();
  if (c.mismatch) return absl::InvalidArgumentError(absl::StrCat("collective ", k, ": ranks disagree on root or size"));
  if (rank != root) {
    std::memcpy(buffer, c.src, bytes);
    ++c.copied;
    cv_.notify_all();
  } else {
    cv_.wait(l, [&] { return aborted_[rank] || c.copied == nranks_ - 1; });
    if (aborted_[rank]) return aborted();
  }
  return absl::OkStatus();
}

void HostComm::Abort(int rank) {
  {
    std::lock_guard<std::mutex> l(mu_);
    aborted_[rank] = true;
  }
  cv_.notify_all();
}

bool HostComm::aborted(int rank) const {
  std::lock_guard<std::mutex> l(mu_);
  return aborted_[rank];
}

}  // namespace swarr::dist
