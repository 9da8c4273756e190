// NCCL weight-broadcast timing for issue 14's "Must show" (docs/multi-gpu.md): one process, one
// thread per GPU, GPU 0 the publisher; a Qwen2.5-1.5B- or 7B-shaped bf16 version cut into buckets
// by the real planner and broadcast bucket by bucket through NcclComm (side stream, watchdog),
// into one staging buffer per receiver. Prints one JSON line per receiver count:
//   {"model":"1p5b","receivers":3,"bytes":...,"buckets":6,"seconds_median":...,"seconds":[...],"GBps":...,"verified":true}
// Built only with -DSWARR_WITH_NCCL=ON. Usage:
//   swarr_nccl_broadcast_bench --model 1p5b --receivers 1,3,7 --bucket-mib 512 --repeat 5
// Not run yet: no multi-GPU machine was lent in the session that wrote it.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

#include "common/dist/bucket_plan.h"
#include "common/dist/nccl_comm.h"
#include "common/dist/zero_partition.h"

namespace swarr::dist {
namespace {

class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    const int gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(l, [&] { return gen != gen_; });
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_, count_ = 0, gen_ = 0;
};

struct Args {
  std::string model = "1p5b";
  std::vector<int> receivers = {1, 3, 7};
  int64_t bucket_mib = 512;
  int repeat = 5;
  int timeout_ms = 60000;
};

bool ParseArgs(int argc, char** argv, Args* a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") {
      a->model = v;
    } else if (k == "--receivers") {
      a->receivers.clear();
      size_t pos = 0;
      while (pos <= v.size()) {
        const size_t comma = v.find(',', pos);
        a->receivers.push_back(std::atoi(v.substr(pos, comma - pos).c_str()));
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    } else if (k == "--bucket-mib") {
      a->bucket_mib = std::atoll(v.c_str());
    } else if (k == "--repeat") {
      a->repeat = std::atoi(v.c_str());
    } else if (k == "--timeout-ms") {
      a->timeout_ms = std::atoi(v.c_str());
    } else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return false;
    }
  }
  return a->model == "1p5b" || a->model == "7b";
}

int Run(const Args& args) {
  const DecoderShape shape = args.model == "7b" ? Qwen25_7B() : Qwen25_1p5B();
  std::vector<TensorSpec> table;
  for (const ParamSpec& p : DecoderParams(shape)) table.push_back({p.name, "BF16", {}, p.numel * 2});
  BucketPlanOptions opt;
  opt.target_bucket_bytes = args.bucket_mib * kMiB;
  if (absl::Status s = ValidateBucketTarget(opt); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  auto plan = PlanBuckets(table, opt);
  if (!plan.ok()) {
    std::fprintf(stderr, "%s\n", std::string(plan.status().message()).c_str());
    return 2;
  }
  int devices = 0;
  cudaGetDeviceCount(&devices);
  for (int k : args.receivers) {
    if (k < 1 || k + 1 > devices) {
      std::fprintf(stderr, "skipping %d receivers: %d GPUs visible\n", k, devices);
      continue;
    }
    auto id = NcclComm::NewUniqueId();
    if (!id.ok()) {
      std::fprintf(stderr, "%s\n", std::string(id.status().message()).c_str());
      return 1;
    }
    const int n = k + 1;
    Barrier barrier(n);
    std::vector<double> seconds;
    std::vector<std::string> errors(n);
    bool verified = true;
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r) {
      threads.emplace_back([&, r] {
        NcclCommOptions o;
        o.device = r;
        o.timeout = std::chrono::milliseconds(args.timeout_ms);
        // Every rank takes part in every barrier, whatever fails, so that nobody waits forever; a
        // rank that cannot broadcast makes the others' broadcasts time out (watchdog) instead.
        auto comm = NcclComm::Create(*id, n, r, o);
        if (!comm.ok()) errors[r] = std::string(comm.status().message());
        char* buf = nullptr;
        cudaSetDevice(r);
        if (errors[r].empty()) {
          if (cudaMalloc(&buf, plan->total_bytes) != cudaSuccess) {
            errors[r] = "cudaMalloc of the staging buffer failed";
            buf = nullptr;
          } else {
            cudaMemset(buf, r == 0 ? 0x3c : 0, plan->total_bytes);
            cudaDeviceSynchronize();
          }
        }
        barrier.Wait();
        for (int it = 0; it <= args.repeat; ++it) {  // iteration 0: warm-up
          barrier.Wait();
          const auto t0 = std::chrono::steady_clock::now();
          int64_t offset = 0;
          for (const Bucket& b : plan->buckets) {
            if (!errors[r].empty()) break;
            absl::Status s = (*comm)->Broadcast(buf + offset, b.bytes, 0);
            if (!s.ok()) errors[r] = std::string(s.message());
            offset += b.bytes;
          }
          barrier.Wait();  // the version is done when every rank has every bucket
          if (r == 0 && it > 0 && errors[r].empty()) {
            seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          }
        }
        if (r == n - 1 && errors[r].empty()) {
          std::vector<unsigned char> probe(4096);
          for (int64_t at : {int64_t{0}, plan->total_bytes / 2, plan->total_bytes - 4096}) {
            cudaMemcpy(probe.data(), buf + at, probe.size(), cudaMemcpyDeviceToHost);
            for (unsigned char c : probe) verified = verified && c == 0x3c;
          }
        }
        if (buf != nullptr) cudaFree(buf);
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < n; ++r) {
      if (!errors[r].empty()) std::fprintf(stderr, "rank %d: %s\n", r, errors[r].c_str());
    }
    bool failed = false;
    for (const std::string& e : errors) failed = failed || !e.empty();
    if (failed || seconds.empty()) return 1;
    std::vector<double> sorted = seconds;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    std::printf("{\"model\":\"%s\",\"receivers\":%d,\"bytes\":%lld,\"buckets\":%zu,\"bucket_mib\":%lld,"
                "\"seconds_median\":%.6f,\"seconds\":[",
                args.model.c_str(), k, static_cast<long long>(plan->total_bytes), plan->buckets.size(),
                static_cast<long long>(args.bucket_mib), median);
    for (size_t i = 0; i < seconds.size(); ++i) std::printf("%s%.6f", i ? "," : "", seconds[i]);
    std::printf("],\"GBps\":%.2f,\"verified\":%s}\n", plan->total_bytes / median / 1e9, verified ? "true" : "false");
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace swarr::dist

int main(int argc, char** argv) {
  swarr::dist::Args args;
  if (!swarr::dist::ParseArgs(argc, argv, &args)) {
    std::fprintf(stderr, "usage: %s [--model 1p5b|7b] [--receivers 1,3,7] [--bucket-mib 512] [--repeat 5]\n", argv[0]);
    return 2;
  }
  return swarr::dist::Run(args);
}
