// Coordinator: persisted state (state.json) and the crash-consistency check of acknowledged
// groups with the learner (coordinator.h "Persistence and crash consistency").
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "coordinator/coordinator.h"
#include "coordinator/internal.h"

namespace swarr {

using coordinator_internal::Clock;
using coordinator_internal::Seconds;
using coordinator_internal::Log;

void Coordinator::MarkDirtyLocked(bool urgent) {
  dirty_ = true;
  urgent_ = urgent_ || urgent;
}

void Coordinator::PersistIfDue(bool force) { (void)Persist(force); }

absl::Status Coordinator::Persist(bool force) {
  // One writer at a time, so that a later snapshot is never overwritten by an earlier one.
  absl::MutexLock writing(&persist_mu_);
  std::string text;
  {
    absl::MutexLock l(&mu_);
    if (!dirty_ && !force) return absl::OkStatus();
    const Clock::time_point now = Clock::now();
    if (!force && !urgent_ && Seconds(now - last_persist_) < options_.persist_interval_seconds) return absl::OkStatus();
    state_.acked_groups.clear();
    for (const auto& [id, g] : acked_) state_.acked_groups.push_back(absl::Base64Escape(g.group.SerializeAsString()));
    text = StateToJson(state_);
    state_.acked_groups.clear();
    dirty_ = urgent_ = false;
    last_persist_ = now;
  }
  absl::Status s = MakeDirs(options_.run_dir + "/coordinator");
  if (s.ok()) s = WriteFileAtomically(state_path_, {text});
  if (!s.ok()) {
    Log(absl::StrCat("cannot write ", state_path_, ": ", s.message()));
    absl::MutexLock l(&mu_);
    MarkDirtyLocked(true);
    return s;
  }
  // state.json holds every acknowledged group the journal held (taken under persist_mu_, which
  // every append holds too): the journal starts again.
  if (::unlink(journal_path_.c_str()) != 0 && errno != ENOENT) {
    Log(absl::StrCat("cannot remove ", journal_path_, ": ", std::strerror(errno)));
  }
  return s;
}

absl::Status Coordinator::JournalAcked(const std::vector<std::string>& entries) {
  absl::MutexLock writing(&persist_mu_);
  std::string text;
  for (const std::string& e : entries) absl::StrAppend(&text, e, "\n");
  absl::Status s = MakeDirs(options_.run_dir + "/coordinator");
  if (!s.ok()) return s;
  const int fd = ::open(journal_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", journal_path_, ": ", std::strerror(errno)));
  size_t done = 0;
  int err = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = errno;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  ::close(fd);
  if (err != 0) {
    Log(absl::StrCat("cannot append to ", journal_path_, ": ", std::strerror(err)));
    return absl::InternalError(absl::StrCat("cannot append to ", journal_path_, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

bool Coordinator::CheckAckedGroups(int32_t stage, bool final) {
  const Clock::time_point now = Clock::now();
  if (!final && Seconds(now - last_acked_check_) < 0.5) return true;
  last_acked_check_ = now;
  while (true) {
    std::vector<std::pair<std::string, int32_t>> ask;
    {
      absl::MutexLock l(&mu_);
      if (state_.stage_index != stage || acked_.empty()) return true;
      for (const auto& [id, g] : acked_) {
        ask.emplace_back(id, g.group.num_samples());
        if (ask.size() >= 4096) break;
      }
    }
    absl::StatusOr<v1::GetGroupStatesResponse> r =
        learner_client_->GetGroupStates(ask, std::min(5.0, limits_.deadline_seconds));
    absl::MutexLock l(&mu_);
    if (state_.stage_index != stage) return true;
    if (!r.ok() && absl::IsUnimplemented(r.status())) {
      // A learner without the call: the groups count as finished, as before.
      Log(absl::StrCat("the learner does not answer GetGroupStates (", r.status().message(),
                       "): groups it acknowledged are not checked after a learner restart"));
      group_states_supported_ = false;
      for (const auto& [id, g] : acked_) finished_ids_.Insert(id);
      acked_.clear();
      return true;
    }
    if (final && !r.ok() && (absl::IsFailedPrecondition(r.status()) || absl::IsInvalidArgument(r.status()))) {
      // The learner cannot say (it is no longer on the stage): nothing is counted.
      Log(absl::StrCat("the learner cannot report the groups of stage ", stage, " (", r.status().message(),
                       "); ", acked_.size(), " acknowledged groups are not checked"));
      for (const auto& [id, g] : acked_) finished_ids_.Insert(id);
      acked_.clear();
      return true;
    }
    if (!r.ok() || r->states_size() != static_cast<int>(ask.size())) {
      const std::string why = r.ok() ? absl::StrCat(r->states_size(), " states for ", ask.size(), " groups")
                                     : std::string(r.status().message());
      if (final && why != last_acked_error_) {
        Log(absl::StrCat("the learner's GetGroupStates failed (", why, "); the stage ends once it answers"));
      }
      last_acked_error_ = why;
      return false;
    }
    last_acked_error_.clear();
    int64_t lost = 0;
    for (size_t i = 0; i < ask.size(); ++i) {
      auto it = acked_.find(ask[i].first);
      if (it == acked_.end()) continue;
      const v1::GetGroupStatesResponse::State st = r->states(static_cast<int>(i));
      if (st == v1::GetGroupStatesResponse::DURABLE || st == v1::GetGroupStatesResponse::DROPPED) {
        finished_ids_.Insert(it->first);
        acked_.erase(it);
        continue;
      }
      if (final) {
        // The stage is over (its final checkpoint written): what was buffered is left unused;
        // what the learner does not hold was acknowledged and never trained.
        if (st == v1::GetGroupStatesResponse::BUFFERED) {
          ++state_.groups_unused_at_stage_end;
        } else {
          ++state_.groups_acked_never_trained;
        }
        finished_ids_.Insert(it->first);
        acked_.erase(it);
        MarkDirtyLocked(true);
        continue;
      }
      if (st != v1::GetGroupStatesResponse::UNKNOWN) continue;  // buffered, or trained after the checkpoint
      // The learner that acknowledged it is gone and this one neither holds nor trained it
      // (its trained ids after the checkpoint were cut): generate it again.
      Group g = std::move(it->second);
      acked_.erase(it);
      g.worker.clear();
      const std::string id = g.group.group_id();
      groups_[id] = std::move(g);
      pending_.push_front(id);
      ++state_.groups_redispatched_after_learner_restart;
      ++state_.groups_reassigned;
      metrics_->groups_reassigned.Increment();
      ++lost;
    }
    MarkDirtyLocked(false);  // acked_ changed (persisted with the state)
    if (lost > 0) {
      Log(absl::StrCat("learner ", r->learner_incarnation(), " does not know ", lost,
                       " groups it acknowledged before (a restart lost them): re-queued"));
    }
    if (!final) return true;
  }
}

}  // namespace swarr
