#include "common/dist/group_membership.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace swarr::dist {

const char* MemberStateName(MemberState s) {
  switch (s) {
    case MemberState::kBootstrapping: return "bootstrapping";
    case MemberState::kReady: return "ready";
    case MemberState::kActive: return "active";
    case MemberState::kLeaving: return "leaving";
    case MemberState::kDropped: return "dropped";
  }
  return "?";
}

int Epoch::RankOf(const std::string& id) const {
  for (size_t r = 0; r < ranks.size(); ++r) {
    if (ranks[r] == id) return static_cast<int>(r);
  }
  return -1;
}

GroupMembership::GroupMembership(MembershipOptions options) : options_(options) {}

absl::StatusOr<GroupMembership::Member*> GroupMembership::Find(const std::string& id) {
  auto it = members_.find(id);
  if (it == members_.end()) return absl::NotFoundError(absl::StrCat("member \"", id, "\" is not in the group"));
  return &it->second;
}

absl::Status GroupMembership::Join(const std::string& id, Role role) {
  if (id.empty()) return absl::InvalidArgumentError("member id is empty");
  auto it = members_.find(id);
  if (it != members_.end() && it->second.state != MemberState::kDropped) {
    return absl::AlreadyExistsError(
        absl::StrCat("member \"", id, "\" is already in the group (", MemberStateName(it->second.state), ")"));
  }
  if (role == Role::kPublisher) {
    for (const auto& [other, m] : members_) {
      if (other != id && m.role == Role::kPublisher && m.state != MemberState::kLeaving &&
          m.state != MemberState::kDropped) {
        return absl::AlreadyExistsError(
            absl::StrCat("the group already has a publisher (\"", other, "\"); \"", id, "\" cannot join as one"));
      }
    }
  }
  Member m;
  m.role = role;
  m.join_seq = next_join_seq_++;
  // The publisher holds the weights: nothing to bootstrap.
  m.state = role == Role::kPublisher ? MemberState::kReady : MemberState::kBootstrapping;
  members_[id] = m;
  return absl::OkStatus();
}

absl::Status GroupMembership::MarkBootstrapped(const std::string& id, int64_t version) {
  auto m = Find(id);
  if (!m.ok()) return m.status();
  if ((*m)->state != MemberState::kBootstrapping) {
    return absl::FailedPreconditionError(
        absl::StrCat("member \"", id, "\" is ", MemberStateName((*m)->state), ", not bootstrapping"));
  }
  if (version <= 0) return absl::InvalidArgumentError(absl::StrCat("bootstrap version ", version, " is not positive"));
  (*m)->state = MemberState::kReady;
  (*m)->bootstrapped_version = version;
  return absl::OkStatus();
}

absl::Status GroupMembership::Leave(const std::string& id) {
  auto m = Find(id);
  if (!m.ok()) return m.status();
  switch ((*m)->state) {
    case MemberState::kActive:
      (*m)->state = MemberState::kLeaving;  // keeps its rank until the boundary
      break;
    case MemberState::kBootstrapping:
    case MemberState::kReady:
      members_.erase(id);  // holds no rank: gone at once
      break;
    case MemberState::kLeaving:
    case MemberState::kDropped:
      break;  // already on its way out
  }
  return absl::OkStatus();
}

absl::Status GroupMembership::MarkDead(const std::string& id) {
  auto m = Find(id);
  if (!m.ok()) return m.status();
  if (epoch_.RankOf(id) < 0) {
    members_.erase(id);
    return absl::OkStatus();
  }
  if ((*m)->state == MemberState::kDropped) return absl::OkStatus();
  (*m)->state = MemberState::kDropped;
  // A rank that dies mid-broadcast hangs the others' collectives: the communicator is lost.
  if (in_flight_ && !acked_.count(id) && !reported_abort_.count(id)) AbortEpoch();
  in_flight_ = in_flight_ && !VersionSettled();
  return absl::OkStatus();
}

bool GroupMembership::MembershipChanged() const {
  if (epoch_.number == 0 || epoch_.aborted) return true;
  for (const auto& [id, m] : members_) {
    if (m.state == MemberState::kReady || m.state == MemberState::kLeaving || m.state == MemberState::kDropped) {
      return true;
    }
  }
  for (const std::string& id : epoch_.ranks) {
    auto it = members_.find(id);
    if (it == members_.end() || it->second.state != MemberState::kActive) return true;
  }
  return false;
}

bool GroupMembership::VersionSettled() const {
  if (!in_flight_) return true;
  for (size_t r = 1; r < epoch_.ranks.size(); ++r) {
    const std::string& id = epoch_.ranks[r];
    if (acked_.count(id) || reported_abort_.count(id)) continue;
    auto it = members_.find(id);
    // Gone, dropped, or dropped and already back as a newcomer: owes no answer in this epoch.
    if (it == members_.end() ||
        (it->second.state != MemberState::kActive && it->second.state != MemberState::kLeaving)) {
      continue;
    }
    return false;
  }
  return true;
}

absl::StatusOr<VersionStart> GroupMembership::BeginVersion(int64_t version, int64_t now_ms) {
  if (version <= version_) {
    return absl::InvalidArgumentError(
        absl::StrCat("version ", version, " does not exceed the current version ", version_));
  }
  CheckDeadlines(now_ms);
  if (in_flight_ && !VersionSettled()) {
    return absl::FailedPreconditionError(absl::StrCat("version ", version_,
                                                      " is still in flight (answers due by ", deadline_ms_,
                                                      " ms, now ", now_ms, " ms)"));
  }
  // The publisher for the next epoch: ready or active, not leaving or dropped.
  std::string publisher;
  for (const auto& [id, m] : members_) {
    if (m.role == Role::kPublisher && (m.state == MemberState::kReady || m.state == MemberState::kActive)) {
      publisher = id;
    }
  }
  if (publisher.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no publisher in the group: version ", version, " cannot start"));
  }

  VersionStart start;
  start.version = version;
  if (MembershipChanged()) {
    Epoch next;
    next.number = epoch_.number + 1;
    next.first_version = version;
    next.comm_slot = next.number;
    next.ranks.push_back(publisher);
    for (const std::string& id : epoch_.ranks) {
      auto it = members_.find(id);
      if (id != publisher && it != members_.end() && it->second.state == MemberState::kActive &&
          it->second.role == Role::kRollout) {
        next.ranks.push_back(id);
      }
    }
    std::vector<std::pair<int64_t, std::string>> ready;
    for (const auto& [id, m] : members_) {
      if (m.state == MemberState::kReady && m.role == Role::kRollout) ready.emplace_back(m.join_seq, id);
    }
    std::sort(ready.begin(), ready.end());
    for (const auto& [seq, id] : ready) {
      next.ranks.push_back(id);
      start.entered.push_back(id);
    }
    // Removals: leaving and dropped members go now.
    for (auto it = members_.begin(); it != members_.end();) {
      if (it->second.state == MemberState::kLeaving || it->second.state == MemberState::kDropped) {
        start.removed.push_back(it->first);
        it = members_.erase(it);
      } else {
        ++it;
      }
    }
    for (const std::string& id : next.ranks) members_[id].state = MemberState::kActive;
    epoch_ = std::move(next);
    start.new_epoch = true;
  }
  version_ = version;
  acked_.clear();
  reported_abort_.clear();
  deadline_ms_ = now_ms + options_.watchdog_timeout_ms + options_.report_grace_ms;
  in_flight_ = epoch_.needs_communicator();
  start.epoch = epoch_;
  start.deadline_ms = deadline_ms_;
  return start;
}

absl::Status GroupMembership::SetUniqueId(int64_t epoch, const std::string& unique_id) {
  if (epoch != epoch_.number || epoch_.number == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("unique id for epoch ", epoch, " but the current epoch is ", epoch_.number));
  }
  if (static_cast<int>(unique_id.size()) != kNcclUniqueIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("unique id has ", unique_id.size(), " bytes, expected ", kNcclUniqueIdBytes));
  }
  if (!epoch_.unique_id.empty()) {
    return absl::AlreadyExistsError(absl::StrCat("epoch ", epoch, " already has its unique id"));
  }
  epoch_.unique_id = unique_id;
  return absl::OkStatus();
}

namespace {
absl::Status CheckAnswer(const Epoch& epoch, const std::string& id, int64_t version, int64_t current) {
  const int rank = epoch.RankOf(id);
  if (rank < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("member \"", id, "\" holds no rank in epoch ", epoch.number));
  }
  if (rank == 0) return absl::InvalidArgumentError(absl::StrCat("\"", id, "\" is the publisher (rank 0)"));
  if (version != current) {
    return absl::FailedPreconditionError(
        absl::StrCat("answer for version ", version, " but version ", current, " is current"));
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status GroupMembership::AckVersion(const std::string& id, int64_t version) {
  auto m = Find(id);
  if (!m.ok()) return m.status();
  if (absl::Status s = CheckAnswer(epoch_, id, version, version_); !s.ok()) return s;
  if ((*m)->state == MemberState::kDropped) {
    return absl::FailedPreconditionError(
        absl::StrCat("member \"", id, "\" was dropped from epoch ", epoch_.number, " (missed its deadline)"));
  }
  if (reported_abort_.count(id)) {
    return absl::FailedPreconditionError(
        absl::StrCat("member \"", id, "\" reported its communicator aborted for version ", version));
  }
  acked_.insert(id);
  in_flight_ = in_flight_ && !VersionSettled();
  return absl::OkStatus();
}

absl::Status GroupMembership::ReportAborted(const std::string& id, int64_t version) {
  auto m = Find(id);
  if (!m.ok()) return m.status();
  if (absl::Status s = CheckAnswer(epoch_, id, version, version_); !s.ok()) return s;
  if ((*m)->state == MemberState::kDropped) {
    return absl::FailedPreconditionError(
        absl::StrCat("member \"", id, "\" was dropped from epoch ", epoch_.number, " (missed its deadline)"));
  }
  if (acked_.count(id)) {
    return absl::FailedPreconditionError(absl::StrCat("member \"", id, "\" already acknowledged version ", version));
  }
  reported_abort_.insert(id);
  AbortEpoch();
  in_flight_ = in_flight_ && !VersionSettled();
  return absl::OkStatus();
}

std::vector<std::string> GroupMembership::CheckDeadlines(int64_t now_ms) {
  std::vector<std::string> dropped;
  if (!in_flight_ || now_ms < deadline_ms_) return dropped;
  for (size_t r = 1; r < epoch_.ranks.size(); ++r) {
    const std::string& id = epoch_.ranks[r];
    if (acked_.count(id) || reported_abort_.count(id)) continue;
    auto it = members_.find(id);
    if (it == members_.end() || it->second.state == MemberState::kDropped) continue;
    if (it->second.state != MemberState::kActive && it->second.state != MemberState::kLeaving) continue;
    it->second.state = MemberState::kDropped;
    dropped.push_back(id);
  }
  if (!dropped.empty()) AbortEpoch();
  in_flight_ = false;
  return dropped;
}

absl::StatusOr<Transport> GroupMembership::TransportFor(const std::string& id) const {
  auto it = members_.find(id);
  if (it == members_.end()) return absl::NotFoundError(absl::StrCat("member \"", id, "\" is not in the group"));
  const Member& m = it->second;
  if (m.state != MemberState::kActive && m.state != MemberState::kLeaving) return Transport::kGrpc;
  if (epoch_.RankOf(id) < 0 || !epoch_.needs_communicator()) return Transport::kGrpc;
  if (acked_.count(id)) return Transport::kNccl;  // it has this version's bytes
  if (epoch_.aborted || reported_abort_.count(id)) return Transport::kGrpc;
  return Transport::kNccl;
}

absl::StatusOr<MemberState> GroupMembership::StateOf(const std::string& id) const {
  auto it = members_.find(id);
  if (it == members_.end()) return absl::NotFoundError(absl::StrCat("member \"", id, "\" is not in the group"));
  return it->second.state;
}

}  // namespace swarr::dist
