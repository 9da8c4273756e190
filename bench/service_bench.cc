// The learner service over loopback gRPC (learner/service/learner_service.h), in one process:
//
//  1. Trajectory streaming: rollout-server-shaped PushTrajectories calls (one group of 8
//     trajectories of 1024 tokens each per call: 128 prompt + 896 completion tokens with their
//     log-probs and token versions) into a real LearnerService running an rl stage whose
//     prompts_per_step is never reached (so the numbers are ingest: validation, dedup and
//     buffering, not training). Trajectories/s and MB/s of serialized requests, for 1 and 4
//     concurrent clients (one channel each).
//  2. Weight transfer: a ~100M-parameter float32 model published by an eval stage and fetched
//     with GetWeights (header + 4 MiB chunks, XXH64 per chunk and overall, verified by the
//     client) against a plain memcpy of the same bytes in the same run.
//
// usage: service_bench [--trajectories N] [--reps R] [--hidden H] [--layers L]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "common/config/config_loader.h"
#include "common/model/config.h"
#include "common/model/runtime.h"
#include "common/rpc/service_options.h"
#include "common/rpc/weights_wire.h"
#include "learner/service/learner_service.h"
#include "tools/args.h"

namespace swarr {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

ModelConfig Config(int64_t vocab, int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads, int64_t kv) {
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.head_dim = hidden / heads;
  c.qkv_bias = true;
  c.tie_word_embeddings = true;
  c.max_position_embeddings = 4096;
  c.layer_windows.assign(layers, 0);
  c.eos_token_ids = {2};
  return c;
}

// A model directory with only config.json (the learner initialises it randomly).
std::string ModelDir(const std::string& root, const std::string& name, const ModelConfig& c) {
  const std::string dir = root + "/" + name;
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << c.ToJson();
  return dir;
}

v1::PipelineConfig ParsePipeline(const std::string& yaml) {
  v1::PipelineConfig p;
  absl::Status st = ParseYamlConfig(yaml, &p);
  if (!st.ok()) {
    std::cerr << "service_bench: " << st << "\n";
    std::exit(1);
  }
  return p;
}

struct Client {
  RpcSecurity security;
  RpcLimits limits;
  std::unique_ptr<v1::Learner::Stub> stub;
  Client(int port) {
    stub = v1::Learner::NewStub(*MakeChannel("127.0.0.1:" + std::to_string(port), security, limits));
  }
};

// One group of `size` trajectories with 1024 tokens each.
v1::PushTrajectoriesRequest MakeGroup(const std::string& group, int size, const std::string& inc) {
  v1::PushTrajectoriesRequest req;
  for (int i = 0; i < size; ++i) {
    v1::Trajectory* t = req.add_trajectories();
    t->set_id(group + "/" + std::to_string(i));
    t->set_group_id(group);
    t->set_group_size(size);
    t->set_stage("rl");
    for (int j = 0; j < 128; ++j) t->add_prompt_ids(3 + (j * 7 + i) % 30000);
    for (int j = 0; j < 896; ++j) {
      t->add_completion_ids(3 + (j * 13 + i) % 30000);
      t->add_behaviour_logprobs(-0.01f * static_cast<float>(j % 300));
      t->add_token_versions(0);
    }
    t->set_policy_version(0);
    t->set_learner_incarnation(inc);
    t->set_reward(i % 2);
    t->set_worker_id("bench");
  }
  return req;
}

void StreamingBench(const std::string& root, int64_t total) {
  const std::string model = ModelDir(root, "stream_model", Config(32000, 64, 128, 2, 4, 2));
  const v1::PipelineConfig p = ParsePipeline(
      "name: bench\nstages:\n  - name: rl\n    rl: {prompts_per_step: 1000000000, samples_per_prompt: 8,"
      " max_new_tokens: 1024}\n    model: {path: " + model + "}\n"
      "    data: {format: synthetic, synthetic_task: sum_digits}\n    optimizer: {lr: 0.001}\n"
      "    stop: {max_steps: 1}\n");
  std::printf("\n### Trajectory streaming (PushTrajectories, one group of 8 x 1024-token trajectories per call)\n\n");
  std::printf(
      "| clients | trajectories | seconds | trajectories/s | tokens/s | MB/s (request bytes) | ms/call (mean) |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int clients : {1, 4}) {
    const std::string run = root + "/stream_run_" + std::to_string(clients);
    LearnerServiceOptions opts;
    opts.run_dir = run;
    LearnerService service(opts);
    if (absl::Status st = service.Start(); !st.ok()) {
      std::cerr << "service_bench: " << st << "\n";
      std::exit(1);
    }
    auto status = service.engine().StartStage(0, p);
    if (!status.ok() ||
        !service.engine().WaitForStatusForTest([](const v1::LearnerStatus& s) { return s.has_latest(); }, 60)) {
      std::cerr << "service_bench: the rl stage did not start\n";
      std::exit(1);
    }
    const std::string inc = service.engine().incarnation();
    const int64_t groups = total / 8 / clients;
    // Requests built before timing (a rollout server has them in memory too).
    std::vector<std::vector<v1::PushTrajectoriesRequest>> reqs(clients);
    int64_t bytes = 0;
    for (int c = 0; c < clients; ++c) {
      for (int64_t g = 0; g < groups; ++g) {
        reqs[c].push_back(MakeGroup("rl/bench-" + std::to_string(c) + "-" + std::to_string(g), 8, inc));
        bytes += static_cast<int64_t>(reqs[c].back().ByteSizeLong());
      }
    }
    std::atomic<int64_t> failures{0};
    const Clock::time_point t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        Client client(service.port());
        for (const auto& req : reqs[c]) {
          grpc::ClientContext ctx;
          PrepareContext(&ctx, client.security, client.limits);
          v1::PushTrajectoriesResponse resp;
          grpc::Status st = client.stub->PushTrajectories(&ctx, req, &resp);
          if (!st.ok() || resp.acks(0).result() != v1::TrajectoryAck::ACCEPTED) ++failures;
        }
      });
    }
    for (auto& t : threads) t.join();
    const double secs = Seconds(t0, Clock::now());
    const v1::LearnerStatus s = service.engine().GetStatus();
    if (failures > 0 || s.trajectories_received() != groups * clients * 8) {
      std::cerr << "service_bench: " << failures << " failed pushes, " << s.trajectories_received() << " received\n";
      std::exit(1);
    }
    const double n = static_cast<double>(groups * clients * 8);
    std::printf("| %d | %.0f | %.2f | %.0f | %.0f | %.1f | %.2f |\n", clients, n, secs, n / secs, n * 1024 / secs,
                static_cast<double>(bytes) / secs / 1e6, secs * 1000 / static_cast<double>(groups) );
    (void)service.Shutdown();
  }
}

void WeightsBench(const std::string& root, int64_t hidden, int64_t layers, int reps) {
  const ModelConfig c = Config(32000, hidden, hidden * 8 / 3, layers, hidden / 64, std::max<int64_t>(1, hidden / 256));
  const std::string model = ModelDir(root, "weights_model", c);
  const v1::PipelineConfig p = ParsePipeline(
      "name: bench\nstages:\n  - name: ev\n    eval: {max_new_tokens: 8}\n    model: {path: " + model + "}\n"
      "    data: {format: synthetic, synthetic_task: sum_digits}\n");
  LearnerServiceOptions opts;
  opts.run_dir = root + "/weights_run";
  LearnerService service(opts);
  if (absl::Status st = service.Start(); !st.ok()) {
    std::cerr << "service_bench: " << st << "\n";
    std::exit(1);
  }
  const Clock::time_point p0 = Clock::now();
  auto status = service.engine().StartStage(0, p);
  if (!status.ok() || status->state() != v1::LearnerStatus::DONE) {
    std::cerr << "service_bench: eval stage: " << (status.ok() ? status->error() : status.status().ToString()) << "\n";
    std::exit(1);
  }
  const double publish_s = Seconds(p0, Clock::now());
  Client client(service.port());
  v1::GetWeightsRequest req;
  req.set_latest(true);
  std::vector<double> grpc_s, copy_s;
  int64_t bytes = 0, params = 0, tensors = 0;
  for (int r = 0; r <= reps; ++r) {  // r = 0 warms up
    const Clock::time_point t0 = Clock::now();
    absl::StatusOr<WeightsBlob> blob = FetchWeights(*client.stub, req, client.security, client.limits, 600);
    const Clock::time_point t1 = Clock::now();
    if (!blob.ok()) {
      std::cerr << "service_bench: GetWeights: " << blob.status() << "\n";
      std::exit(1);
    }
    bytes = static_cast<int64_t>(blob->data.size());
    tensors = static_cast<int64_t>(blob->tensors.size());
    params = bytes / 4;
    // The baseline: the same bytes copied in memory (into a fresh buffer, as a receiver would).
    std::vector<char> dst(blob->data.size());
    const Clock::time_point c0 = Clock::now();
    std::memcpy(dst.data(), blob->data.data(), blob->data.size());
    const Clock::time_point c1 = Clock::now();
    if (std::memcmp(dst.data(), blob->data.data(), dst.size()) != 0) std::exit(1);
    if (r > 0) {
      grpc_s.push_back(Seconds(t0, t1));
      copy_s.push_back(Seconds(c0, c1));
    }
  }
  std::sort(grpc_s.begin(), grpc_s.end());
  std::sort(copy_s.begin(), copy_s.end());
  const double g = grpc_s[grpc_s.size() / 2], m = copy_s[copy_s.size() / 2];
  std::printf("\n### Weight transfer (GetWeights over loopback vs memcpy; median of %d)\n\n", reps);
  std::printf("Model: qwen2-style, hidden %lld, %lld layers, vocab 32000, %.1fM parameters, float32, %lld tensors, "
              "%.1f MB; chunks of 4 MiB. Publishing it (random init + serialize + XXH64) took %.2f s.\n\n",
              static_cast<long long>(hidden), static_cast<long long>(layers), static_cast<double>(params) / 1e6,
              static_cast<long long>(tensors), static_cast<double>(bytes) / 1e6, publish_s);
  std::printf("| transfer | seconds | GB/s |\n|---|---:|---:|\n");
  std::printf("| GetWeights (header + chunks, XXH64 checked per chunk and overall) | %.3f | %.2f |\n", g,
              static_cast<double>(bytes) / g / 1e9);
  std::printf("| memcpy of the same bytes | %.3f | %.2f |\n", m, static_cast<double>(bytes) / m / 1e9);
  std::printf("| ratio GetWeights / memcpy | %.1fx | |\n", g / m);
  (void)service.Shutdown();
}

int Main(int argc, char** argv) {
  auto args =
      Args::Parse(std::vector<std::string>(argv + 1, argv + argc), {"trajectories", "reps", "hidden", "layers"}, {});
  if (!args.ok()) {
    std::cerr << "service_bench: " << args.status().message() << "\n";
    return 2;
  }
  const int64_t total = args->Int("trajectories").value_or(std::nullopt).value_or(24000);
  const int reps = static_cast<int>(args->Int("reps").value_or(std::nullopt).value_or(3));
  const int64_t hidden = args->Int("hidden").value_or(std::nullopt).value_or(768);
  const int64_t layers = args->Int("layers").value_or(std::nullopt).value_or(12);
  InitTorchRuntime();
  char tmpl[] = "/tmp/swarr_service_bench_XXXXXX";
  const std::string root = ::mkdtemp(tmpl);
  StreamingBench(root, total);
  WeightsBench(root, hidden, layers, reps);
  std::filesystem::remove_all(root);
  return 0;
}

}  // namespace
}  // namespace swarr

int main(int argc, char** argv) { return swarr::Main(argc, argv); }
