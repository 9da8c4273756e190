#include "coordinator/assignment_stream.h"

#include "common/rpc/status.h"

namespace swarr {

class AssignmentStream::Reactor final : public grpc::ServerWriteReactor<v1::Assignment> {
 public:
  explicit Reactor(std::shared_ptr<AssignmentStream> stream) : stream_(std::move(stream)) {}
  void OnWriteDone(bool ok) override { stream_->OnWriteDone(ok); }
  void OnCancel() override { stream_->OnCancel(); }
  void OnDone() override {
    stream_->OnDone();
    delete this;
  }

 private:
  std::shared_ptr<AssignmentStream> stream_;
};

namespace {

class RejectedReactor final : public grpc::ServerWriteReactor<v1::Assignment> {
 public:
  explicit RejectedReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

void AppendGroupIds(const std::deque<v1::Assignment>& queue, std::vector<std::string>* out) {
  for (const v1::Assignment& a : queue) {
    if (a.has_group()) out->push_back(a.group().group_id());
  }
}

}  // namespace

std::pair<grpc::ServerWriteReactor<v1::Assignment>*, std::shared_ptr<AssignmentStream>> AssignmentStream::Create(
    BrokenCallback on_broken) {
  std::shared_ptr<AssignmentStream> stream(new AssignmentStream(std::move(on_broken)));
  auto* reactor = new Reactor(stream);
  {
    absl::MutexLock l(&stream->mu_);
    stream->reactor_ = reactor;
  }
  return {reactor, stream};
}

grpc::ServerWriteReactor<v1::Assignment>* AssignmentStream::Rejected(const grpc::Status& status) {
  return new RejectedReactor(status);
}

AssignmentStream::~AssignmentStream() = default;

bool AssignmentStream::Enqueue(v1::Assignment assignment) {
  absl::MutexLock l(&mu_);
  if (closed_) return false;
  queue_.push_back(std::move(assignment));
  return true;
}

void AssignmentStream::Flush() {
  Reactor* reactor = nullptr;
  {
    absl::MutexLock l(&mu_);
    if (writing_ || closed_ || queue_.empty() || reactor_ == nullptr) return;
    writing_ = true;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    reactor = reactor_;
  }
  // Safe outside the lock: Finish (and so OnDone) never happens while writing_ is set.
  reactor->StartWrite(&current_);
}

std::vector<v1::Assignment> AssignmentStream::Close(const absl::Status& status) {
  std::vector<v1::Assignment> unsent;
  Reactor* finish = nullptr;
  grpc::Status finish_status;
  {
    absl::MutexLock l(&mu_);
    if (closed_) return unsent;
    closed_ = true;
    for (v1::Assignment& a : queue_) unsent.push_back(std::move(a));
    queue_.clear();
    finish_status_ = ToGrpcStatus(status);
    if (!writing_ && !finish_called_ && reactor_ != nullptr) {
      finish_called_ = true;
      finish = reactor_;
      finish_status = finish_status_;
    }
  }
  if (finish != nullptr) finish->Finish(finish_status);
  return unsent;
}

void AssignmentStream::OnWriteDone(bool ok) {
  std::shared_ptr<AssignmentStream> keep = shared_from_this();
  Reactor* write = nullptr;
  Reactor* finish = nullptr;
  grpc::Status finish_status;
  bool notify = false;
  std::vector<std::string> unsent;
  {
    absl::MutexLock l(&mu_);
    writing_ = false;
    if (!ok && !closed_) {
      // The transport failed: the worker may not have the message in flight nor the queue.
      closed_ = true;
      notify = true;
      if (current_.has_group()) unsent.push_back(current_.group().group_id());
      AppendGroupIds(queue_, &unsent);
      queue_.clear();
      finish_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
    } else if (broken_pending_) {
      broken_pending_ = false;
      notify = true;
      unsent = std::move(broken_unsent_);
      if (!ok && current_.has_group()) unsent.push_back(current_.group().group_id());
    }
    if (closed_) {
      if (!finish_called_) {
        finish_called_ = true;
        finish = reactor_;
        finish_status = finish_status_;
      }
    } else if (!queue_.empty()) {
      writing_ = true;
      current_ = std::move(queue_.front());
      queue_.pop_front();
      write = reactor_;
    }
  }
  if (notify && on_broken_) on_broken_(unsent);
  if (write != nullptr) write->StartWrite(&current_);
  if (finish != nullptr) finish->Finish(finish_status);
}

void AssignmentStream::OnCancel() {
  std::shared_ptr<AssignmentStream> keep = shared_from_this();
  Reactor* finish = nullptr;
  grpc::Status finish_status;
  bool notify = false;
  std::vector<std::string> unsent;
  {
    absl::MutexLock l(&mu_);
    if (!closed_) {
      closed_ = true;
      finish_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      AppendGroupIds(queue_, &unsent);
      queue_.clear();
      if (writing_) {
        broken_pending_ = true;
        broken_unsent_ = std::move(unsent);
        unsent.clear();
      } else {
        notify = true;
      }
    }
    if (!writing_ && !finish_called_) {
      finish_called_ = true;
      finish = reactor_;
      finish_status = finish_status_;
    }
  }
  if (notify && on_broken_) on_broken_(unsent);
  if (finish != nullptr) finish->Finish(finish_status);
}

void AssignmentStream::OnDone() {
  absl::MutexLock l(&mu_);
  reactor_ = nullptr;
  closed_ = true;
}

}  // namespace swarr
