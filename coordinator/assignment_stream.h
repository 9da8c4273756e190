// The server side of one Coordinator.WatchAssignments stream: a gRPC callback (reactor) writer
// with an outgoing queue, and the AssignmentSink interface the coordinator engine writes to.
#ifndef SWARR_COORDINATOR_ASSIGNMENT_STREAM_H_
#define SWARR_COORDINATOR_ASSIGNMENT_STREAM_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/support/server_callback.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "proto/swarr/v1/coordinator.pb.h"

namespace swarr {

// Where the coordinator sends a worker's assignments. Thread-safe.
class AssignmentSink {
 public:
  virtual ~AssignmentSink() = default;
  // Queues `assignment` without any I/O (safe under the coordinator's lock, keeps the order of
  // calls). false once the stream is closed.
  virtual bool Enqueue(v1::Assignment assignment) = 0;
  // Starts writing what is queued. Never call it while holding a lock the broken-stream
  // callback takes: gRPC may run the write's completion inline.
  virtual void Flush() = 0;
  // Ends the stream with `status` (after the write in progress). Returns the queued
  // assignments that were never written. Safe under the coordinator's lock; the broken-stream
  // callback never runs for a stream closed this way.
  virtual std::vector<v1::Assignment> Close(const absl::Status& status) = 0;
};

// One WatchAssignments call. Create() gives the reactor to return from the handler (gRPC owns
// and deletes it) and the shared stream object the coordinator keeps.
class AssignmentStream final : public AssignmentSink, public std::enable_shared_from_this<AssignmentStream> {
 public:
  // Called once, from a gRPC thread and with no lock held, when the client goes away or a write
  // fails before the coordinator closed the stream; its argument: the group ids queued or
  // in flight that the worker may not have received.
  using BrokenCallback = std::function<void(const std::vector<std::string>& unsent_group_ids)>;

  static std::pair<grpc::ServerWriteReactor<v1::Assignment>*, std::shared_ptr<AssignmentStream>> Create(
      BrokenCallback on_broken);

  // A reactor that ends the call at once with `status` (auth or argument errors).
  static grpc::ServerWriteReactor<v1::Assignment>* Rejected(const grpc::Status& status);

  bool Enqueue(v1::Assignment assignment) override;
  void Flush() override;
  std::vector<v1::Assignment> Close(const absl::Status& status) override;

  AssignmentStream(const AssignmentStream&) = delete;
  AssignmentStream& operator=(const AssignmentStream&) = delete;
  ~AssignmentStream() override;

 private:
  class Reactor;
  explicit AssignmentStream(BrokenCallback on_broken) : on_broken_(std::move(on_broken)) {}

  // Reactions, forwarded by the reactor.
  void OnWriteDone(bool ok);
  void OnCancel();
  void OnDone();

  const BrokenCallback on_broken_;
  absl::Mutex mu_;
  std::deque<v1::Assignment> queue_ ABSL_GUARDED_BY(mu_);
  // The message being written: only the thread that set writing_ touches it until OnWriteDone.
  v1::Assignment current_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // No more Enqueue (closed by the coordinator, or broken).
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Broken while a write was in flight: the callback runs when that write completes.
  bool broken_pending_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> broken_unsent_ ABSL_GUARDED_BY(mu_);
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
  // Null after OnDone (gRPC deleted it).
  Reactor* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace swarr

#endif  // SWARR_COORDINATOR_ASSIGNMENT_STREAM_H_
