#include "coordinator/request_checks.h"

#include <cmath>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

void ExpectInvalid(const absl::Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(field)) << s;
}

TEST(RequestChecksTest, EachBadFieldIsNamed) {
  v1::RegisterWorkerRequest reg;
  reg.set_role("rollout");
  EXPECT_TRUE(CheckRegisterWorkerRequest(reg).ok());
  reg.set_name(std::string(kMaxTextField + 1, 'x'));
  ExpectInvalid(CheckRegisterWorkerRequest(reg), "name: longer than 256 bytes");
  reg.set_name("");
  reg.add_held_group_ids("");
  ExpectInvalid(CheckRegisterWorkerRequest(reg), "held_group_ids[0]: empty group id");
  reg.set_role("learner");
  ExpectInvalid(CheckRegisterWorkerRequest(reg), "role");

  v1::HeartbeatRequest hb;
  ExpectInvalid(CheckHeartbeatRequest(hb), "worker_id: required");
  hb.set_worker_id("w");
  EXPECT_TRUE(CheckHeartbeatRequest(hb).ok());
  hb.add_finished_group_ids(std::string(kMaxGroupId + 1, 'g'));
  ExpectInvalid(CheckHeartbeatRequest(hb), "finished_group_ids[0]: longer than 512 bytes");
  hb.clear_finished_group_ids();
  hb.mutable_progress()->set_running_sequences(-1);
  ExpectInvalid(CheckHeartbeatRequest(hb), "progress.running_sequences");

  v1::ReportEvalRequest ev;
  ev.set_worker_id("w");
  ev.set_group_id("ev/abc-000001");
  EXPECT_TRUE(CheckReportEvalRequest(ev).ok());
  ev.add_samples()->set_reward(std::nan(""));
  ExpectInvalid(CheckReportEvalRequest(ev), "samples[0].reward: not finite");
  ev.mutable_samples(0)->set_reward(1);
  ev.mutable_samples(0)->add_completion_ids(-3);
  ExpectInvalid(CheckReportEvalRequest(ev), "samples[0].completion_ids[0]: negative token id -3");
}

}  // namespace
}  // namespace swarr
