// Runs on a GPU machine (built with -DSWARR_WITH_NCCL=ON); skips where CUDA sees too few devices.
// Two-rank cases use one thread per GPU (NCCL refuses two ranks on one device).
#include "common/dist/nccl_comm.h"

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

#include "gtest/gtest.h"

namespace swarr::dist {
namespace {

int Devices() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

TEST(NcclCommTest, ArgumentsAreChecked) {
  NcclCommOptions o;
  EXPECT_EQ(NcclComm::Create("short", 1, 0, o).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NcclComm::Create(std::string(128, 'x'), 2, 2, o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NcclCommTest, OneRankBroadcast) {
  if (Devices() < 1) GTEST_SKIP() << "no CUDA device";
  auto id = NcclComm::NewUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  NcclCommOptions o;
  auto comm = NcclComm::Create(*id, 1, 0, o);
  ASSERT_TRUE(comm.ok()) << comm.status();
  void* buf = nullptr;
  ASSERT_EQ(cudaMalloc(&buf, 1 << 20), cudaSuccess);
  ASSERT_EQ(cudaMemset(buf, 0x5a, 1 << 20), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE((*comm)->Broadcast(buf, 1 << 20, 0).ok());
  EXPECT_FALSE((*comm)->aborted());
  cudaFree(buf);
}

TEST(NcclCommTest, InitTimesOutWhenAPeerNeverJoins) {
  if (Devices() < 1) GTEST_SKIP() << "no CUDA device";
  auto id = NcclComm::NewUniqueId();
  ASSERT_TRUE(id.ok());
  NcclCommOptions o;
  o.timeout = std::chrono::milliseconds(500);
  const auto t0 = std::chrono::steady_clock::now();
  auto comm = NcclComm::Create(*id, 2, 0, o);  // rank 1 never comes
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded) << comm.status();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(NcclCommTest, TwoRanksBroadcastAndWatchdogAbort) {
  if (Devices() < 2) GTEST_SKIP() << "needs 2 GPUs";
  auto id = NcclComm::NewUniqueId();
  ASSERT_TRUE(id.ok());
  constexpr size_t kBytes = 64 << 20;
  std::vector<std::unique_ptr<NcclComm>> comms(2);
  std::vector<void*> bufs(2, nullptr);
  std::vector<absl::Status> st(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      NcclCommOptions o;
      o.device = r;
      o.timeout = std::chrono::milliseconds(2000);
      auto c = NcclComm::Create(*id, 2, r, o);
      if (!c.ok()) {
        st[r] = c.status();
        return;
      }
      comms[r] = std::move(*c);
      cudaSetDevice(r);
      cudaMalloc(&bufs[r], kBytes);
      cudaMemset(bufs[r], r == 0 ? 0x11 : 0x00, kBytes);
      cudaDeviceSynchronize();
      st[r] = comms[r]->Broadcast(bufs[r], kBytes, 0);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(st[0].ok()) << st[0];
  ASSERT_TRUE(st[1].ok()) << st[1];
  std::vector<uint8_t> host(kBytes);
  cudaSetDevice(1);
  ASSERT_EQ(cudaMemcpy(host.data(), bufs[1], kBytes, cudaMemcpyDeviceToHost), cudaSuccess);
  for (size_t i = 0; i < kBytes; i += 4096) ASSERT_EQ(host[i], 0x11) << i;

  // Rank 1 "dies" (never joins the next broadcast): rank 0's watchdog aborts, no hang.
  const auto t0 = std::chrono::steady_clock::now();
  absl::Status s = comms[0]->Broadcast(bufs[0], kBytes, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_TRUE(comms[0]->aborted());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  comms[1]->Abort();
  for (int r = 0; r < 2; ++r) {
    cudaSetDevice(r);
    cudaFree(bufs[r]);
  }
}

}  // namespace
}  // namespace swarr::dist
