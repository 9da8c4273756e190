// `swarr launch`: the whole pipeline on one machine — coordinator, learner and N rollout
// servers as separate processes on loopback (docs/services.md). It supervises them like a
// cluster manager would: a service that dies (crash, kill -9) is restarted on the same ports
// (the learner resumes from its checkpoint, the coordinator from its state file, a rollout
// server re-registers), up to --max-restarts times each.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/config/config_loader.h"
#include "common/config/placement.h"
#include "common/model/runtime.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "common/util/subprocess.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/launch.h"
#include "common/rpc/service_options.h"
#include "proto/swarr/v1/coordinator.grpc.pb.h"

namespace swarr {
namespace {

std::atomic<int> g_stop_signal{0};

void OnStopSignal(int sig) { g_stop_signal.store(sig); }

std::string SelfExe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "swarr";
  buf[n] = '\0';
  return std::string(buf);  // the real binary, never a swarr-<service> symlink
}

// Serialises the prefixed output of every child.
class PrefixedLog {
 public:
  explicit PrefixedLog(bool echo) : echo_(echo) {}
  // A service's line: on stdout when echoing.
  void Line(const std::string& who, const std::string& line) {
    if (!echo_) return;
    Print(who, line);
  }
  // The launcher's own line: always shown (on stderr when not echoing, after the progress
  // display's line).
  void Own(const std::string& line) {
    if (echo_) return Print("launch", line);
    std::lock_guard<std::mutex> lock(mu_);
    // On a terminal, clear the progress display's line first.
    std::cerr << (isatty(STDERR_FILENO) ? "\r\33[K" : "") << "swarr: " << line << "\n" << std::flush;
  }

 private:
  void Print(const std::string& who, const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    std::cout << "[" << who << "] " << line << "\n" << std::flush;
  }
  bool echo_;
  std::mutex mu_;
};

struct Service {
  std::string name;
  std::vector<std::string> base_args;  // after the tool path, without --listen / --metrics-listen
  std::string run_dir;
  int port = 0;          // gRPC port once known (kept across restarts)
  int metrics_port = 0;  // metrics port once known (0 = any free)
  int restarts = 0;
  bool stopping = false;
  std::unique_ptr<Subprocess> proc;

  std::string port_file() const { return run_dir + "/ports/" + name + ".port"; }
  std::string metrics_port_file() const { return run_dir + "/ports/" + name + ".metrics.port"; }
  std::string log_file() const { return run_dir + "/logs/" + name + ".log"; }
};

absl::StatusOr<int> ReadPort(const std::string& path) {
  SWARR_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  int port = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port) || port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a port number"));
  }
  return port;
}

std::string Tail(const std::string& path, int lines) {
  auto text = ReadFile(path);
  if (!text.ok()) return "";
  std::vector<std::string> all;
  size_t start = 0;
  while (start < text->size()) {
    size_t nl = text->find('\n', start);
    if (nl == std::string::npos) nl = text->size();
    all.push_back(text->substr(start, nl - start));
    start = nl + 1;
  }
  std::string out;
  for (size_t i = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0; i < all.size(); ++i) {
    out += "    " + all[i] + "\n";
  }
  return out;
}

class Launcher {
 public:
  Launcher(std::string exe, std::string run_dir, int max_restarts, bool echo)
      : exe_(std::move(exe)), run_dir_(std::move(run_dir)), max_restarts_(max_restarts), log_(echo) {}

  // Starts `s` (again) and waits until it has written its port file.
  absl::Status Start(Service* s) {
    std::remove(s->port_file().c_str());
    std::remove(s->metrics_port_file().c_str());
    std::vector<std::string> argv = {exe_};
    argv.insert(argv.end(), s->base_args.begin(), s->base_args.end());
    argv.insert(argv.end(), {"--listen", absl::StrCat("127.0.0.1:", s->port), "--port-file", s->port_file(),
                             "--metrics-listen", absl::StrCat("127.0.0.1:", s->metrics_port),
                             "--metrics-port-file", s->metrics_port_file()});
    Subprocess::Options opts;
    const std::string name = s->name, log_path = s->log_file();
    auto log_file = std::make_shared<std::ofstream>(log_path, std::ios::app);
    PrefixedLog* log = &log_;
    opts.on_line = [name, log, log_file](const std::string& line) {
      log->Line(name, line);
      *log_file << line << "\n";
      log_file->flush();
    };
    SWARR_ASSIGN_OR_RETURN(s->proc, Subprocess::Start(argv, opts));
    const std::string pid_text = absl::StrCat(s->proc->pid(), "\n");
    SWARR_RETURN_IF_ERROR(WriteFileAtomically(run_dir_ + "/pids/" + s->name + ".pid", {pid_text}));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (true) {
      auto port = ReadPort(s->port_file());
      if (port.ok()) {
        s->port = *port;
        auto mport = ReadPort(s->metrics_port_file());
        if (mport.ok()) s->metrics_port = *mport;
        return absl::OkStatus();
      }
      if (!s->proc->running()) {
        return absl::UnavailableError(absl::StrCat(s->name, " exited with status ", s->proc->exit_status(),
                                                   " while starting; last lines of ", log_path, ":\n",
                                                   Tail(log_path, 5)));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat(s->name, " did not report its port within 120 s"));
      }
      if (g_stop_signal.load() != 0) return absl::CancelledError("interrupted");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // SIGTERM to every service still running, SIGKILL after `grace` seconds.
  void StopAll(std::vector<Service*> services, double grace) {
    for (Service* s : services) {
      s->stopping = true;
      if (s->proc && s->proc->running()) s->proc->Signal(SIGTERM);
    }
    for (Service* s : services) {
      if (!s->proc) continue;
      if (s->proc->Wait(grace) < 0) {
        log_.Own(absl::StrCat(s->name, " did not stop within ", grace, " s; killing it"));
        s->proc->Signal(SIGKILL);
        s->proc->Wait(10);
      }
    }
  }

  // A service that exited unexpectedly: restart it on its ports, or give up.
  absl::Status Restart(Service* s) {
    const int status = s->proc->exit_status();
    if (s->restarts >= max_restarts_) {
      return absl::AbortedError(absl::StrCat(s->name, " exited with status ", status, " and was restarted ",
                                             s->restarts, " times already; giving up. Last lines of ",
                                             s->log_file(), ":\n", Tail(s->log_file(), 5)));
    }
    ++s->restarts;
    log_.Own(absl::StrCat(s->name, " exited with status ", status, status > 128 ? " (signal)" : "",
                                     "; restarting it on port ", s->port, " (", s->restarts, "/", max_restarts_,
                                     ")"));
    // The old process's port may take a moment to be free again.
    absl::Status st;
    for (int attempt = 0; attempt < 20; ++attempt) {
      st = Start(s);
      if (st.ok() || g_stop_signal.load() != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return st;
  }

  PrefixedLog& log() { return log_; }

 private:
  std::string exe_, run_dir_;
  int max_restarts_;
  PrefixedLog log_;
};

void PrintSummary(const std::string& run_dir) {
  auto text = ReadFile(run_dir + "/summary.json");
  if (!text.ok()) return;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("stages")) return;
  std::cout << "\n" << absl::StrFormat("%-16s %-6s %7s  %s\n", "stage", "kind", "steps", "metrics");
  for (const auto& st : j["stages"]) {
    std::string metrics;
    if (st.contains("metrics") && st["metrics"].is_object()) {
      for (const char* key : {"accuracy", "reward_mean", "loss", "kl"}) {
        if (st["metrics"].contains(key) && st["metrics"][key].is_number()) {
          metrics += absl::StrFormat("%s %.4f  ", key, st["metrics"][key].get<double>());
        }
      }
    }
    std::cout << absl::StrFormat("%-16s %-6s %7d  %s\n", st.value("name", ""), st.value("kind", ""),
                                 st.value("steps", int64_t{0}), metrics);
  }
  std::cout << absl::StrFormat("trajectories trained %d, dropped stale %d, ids trained twice %d\n",
                               j.value("trajectories_trained", int64_t{0}),
                               j.value("trajectories_dropped_stale", int64_t{0}),
                               j.value("trajectory_ids_trained_twice", int64_t{0}));
  std::cout << "summary: " << run_dir << "/summary.json\n";
}

// One-line progress display from the coordinator's status (when not echoing the logs).
class ProgressLine {
 public:
  ProgressLine(int coordinator_port, const RpcSecurity& security) : security_(security) {
    auto channel = MakeChannel(absl::StrCat("127.0.0.1:", coordinator_port), security_, limits_);
    if (channel.ok()) stub_ = v1::Coordinator::NewStub(*channel);
    tty_ = isatty(STDERR_FILENO) != 0;
  }
  void Update(double seconds) {
    if (!stub_) return;
    grpc::ClientContext ctx;
    PrepareContext(&ctx, security_, limits_, 2);
    v1::PipelineStatus st;
    if (!stub_->GetStatus(&ctx, v1::GetPipelineStatusRequest(), &st).ok()) return;
    std::string metrics;
    if (st.stage_index() >= 0 && st.stage_index() < st.stages_size()) {
      const auto& m = st.stages(st.stage_index()).metrics();
      for (const char* key : {"loss", "reward_mean", "accuracy"}) {
        if (auto it = m.find(key); it != m.end()) metrics += absl::StrFormat("  %s %.3f", key, it->second);
      }
    }
    const std::string line =
        absl::StrFormat("stage %d/%d %s (%s)  step %d%s  workers %d  %.0f s", st.stage_index() + 1,
                        st.stages_size(), st.stage_name(), st.stage_kind(), st.step(), metrics, st.workers_size(),
                        seconds);
    if (line == last_) return;
    last_ = line;
    if (tty_) {
      std::cerr << "\r\33[K" << line << std::flush;
    } else if (st.stage_name() != last_stage_) {
      std::cerr << "swarr: " << line << "\n";  // not a terminal: one line per stage
    }
    last_stage_ = st.stage_name();
  }
  void Done() {
    if (tty_ && !last_.empty()) std::cerr << "\n";
  }

 private:
  RpcSecurity security_;
  RpcLimits limits_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
  bool tty_ = false;
  std::string last_, last_stage_;
};

}  // namespace

int LaunchPipeline(const LaunchOptions& options) {
  const std::string& run_dir = options.run_dir;
  // A malformed config is the user's mistake: one line naming the field, before any process.
  v1::PipelineConfig pipeline;
  if (absl::Status s = LoadYamlConfig(options.config_path, &pipeline); !s.ok()) return FailWithStatus(s);
  if (absl::Status s = ValidatePipeline(pipeline); !s.ok()) {
    return FailWithStatus(absl::InvalidArgumentError(absl::StrCat(options.config_path, ": ", s.message())));
  }
  // Which device each service uses, checked against the GPUs this machine has.
  GpuInventory gpus;
  gpus.gpus = CudaDeviceCount();
  for (int i = 0; i < gpus.gpus; ++i) {
    gpus.total_gib.push_back(static_cast<double>(QueryDeviceMemory(absl::StrCat("cuda:", i)).total_bytes) / (1 << 30));
  }
  auto placement = ResolvePlacement(pipeline, options.rollouts, gpus, options.rollout_devices);
  if (!placement.ok()) {
    return FailWithStatus(absl::InvalidArgumentError(absl::StrCat(options.config_path, ": ", placement.status().message())));
  }
  for (const char* sub : {"", "/ports", "/logs", "/pids"}) {
    if (absl::Status s = MakeDirs(run_dir + sub); !s.ok()) return FailWithStatus(s);
  }
  // Tokens: the services' --token-dir (made here unless given) or --insecure.
  std::vector<std::string> sec = options.tls_flags;
  std::string token_dir;
  if (options.insecure) {
    if (!options.token_dir.empty()) {
      return FailWithStatus(
          absl::InvalidArgumentError("--insecure and --token-dir contradict each other: give one of them"));
    }
    sec.push_back("--insecure");
  } else {
    token_dir = options.token_dir;
    if (token_dir.empty()) {
      token_dir = run_dir + "/tokens";
      if (absl::Status s = WriteRoleTokens(token_dir); !s.ok()) return FailWithStatus(s);
    }
    // Checked here, so that a bad directory is one line before any process starts.
    if (auto tokens = LoadRoleTokens(token_dir); !tokens.ok()) return FailWithStatus(tokens.status());
    sec.insert(sec.end(), {"--token-dir", token_dir});
  }
  // The progress display calls the coordinator as an operator, with the services' TLS settings.
  std::string tls_cert, tls_key, tls_ca;
  for (size_t i = 0; i + 1 < options.tls_flags.size(); i += 2) {
    const std::string& f = options.tls_flags[i];
    const std::string& v = options.tls_flags[i + 1];
    if (f == "--tls-cert") tls_cert = v;
    if (f == "--tls-key") tls_key = v;
    if (f == "--tls-ca") tls_ca = v;
  }
  std::string operator_token;
  if (!token_dir.empty() && access((token_dir + "/operator.token").c_str(), F_OK) == 0) {
    operator_token = token_dir + "/operator.token";
  }
  auto security = LoadRpcSecurity(operator_token, tls_cert, tls_key, tls_ca);
  if (!security.ok()) return FailWithStatus(security.status());
  if (operator_token.empty()) security->token.clear();  // not SWARR_TOKEN: nothing, as the services were told

  // Every service is its own process: one LibTorch/OpenMP thread each unless the user says
  // otherwise (threads that outnumber the cores spin against each other: 2-7x slower on 2 cores).
  setenv("OMP_NUM_THREADS", "1", /*overwrite=*/0);
  Launcher launcher(SelfExe(), run_dir, options.max_restarts, options.echo_logs);
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  const auto start = std::chrono::steady_clock::now();
  Service learner{"learner", {"learner", "--run-dir", run_dir}, run_dir};
  learner.base_args.insert(learner.base_args.end(), sec.begin(), sec.end());
  Service coordinator{"coordinator", {"coordinator", "--config", options.config_path, "--run-dir", run_dir}, run_dir};
  std::vector<Service> workers(static_cast<size_t>(options.rollouts));
  std::vector<Service*> all = {&learner, &coordinator};
  auto fail = [&](const absl::Status& s) {
    launcher.log().Own(std::string(s.message()));
    launcher.StopAll(all, 30);
    return s.code() == absl::StatusCode::kCancelled ? 130 : 1;
  };

  if (absl::Status s = launcher.Start(&learner); !s.ok()) return fail(s);
  coordinator.base_args.insert(coordinator.base_args.end(), {"--learner", absl::StrCat("127.0.0.1:", learner.port)});
  coordinator.base_args.insert(coordinator.base_args.end(), sec.begin(), sec.end());
  if (absl::Status s = launcher.Start(&coordinator); !s.ok()) return fail(s);
  for (int i = 0; i < options.rollouts; ++i) {
    Service& w = workers[static_cast<size_t>(i)];
    w.name = absl::StrCat("rollout-", i);
    w.run_dir = run_dir;
    w.base_args = {"rollout", "--coordinator", absl::StrCat("127.0.0.1:", coordinator.port), "--name", w.name};
    const ServicePlacement& where = placement->rollouts[static_cast<size_t>(i)];
    w.base_args.insert(w.base_args.end(), {"--device", where.device});
    if (where.memory_gib > 0) w.base_args.insert(w.base_args.end(), {"--memory-gib", absl::StrCat(where.memory_gib)});
    w.base_args.insert(w.base_args.end(), sec.begin(), sec.end());
    all.push_back(&w);
    if (absl::Status s = launcher.Start(&w); !s.ok()) return fail(s);
  }
  launcher.log().Own(absl::StrCat("placement: ", placement->Describe()));
  launcher.log().Own(absl::StrCat("coordinator 127.0.0.1:", coordinator.port, ", learner 127.0.0.1:", learner.port,
                                  ", ", options.rollouts, " rollout server(s); logs in ", run_dir,
                                  "/logs; status: swarr status --coordinator 127.0.0.1:", coordinator.port,
                                  token_dir.empty() ? "" : " --token-dir " + token_dir));
  std::unique_ptr<ProgressLine> progress;
  if (!options.echo_logs) progress = std::make_unique<ProgressLine>(coordinator.port, *security);
  auto last_progress = std::chrono::steady_clock::now() - std::chrono::seconds(10);

  while (true) {
    const auto now = std::chrono::steady_clock::now();
    if (progress && now - last_progress > std::chrono::milliseconds(500)) {
      progress->Update(std::chrono::duration<double>(now - start).count());
      last_progress = now;
    }
    if (const int sig = g_stop_signal.load(); sig != 0) {
      if (progress) progress->Done();
      launcher.log().Own("interrupted: stopping every service");
      launcher.StopAll(all, 30);
      return 128 + sig;
    }
    if (!coordinator.proc->running()) {
      const int status = coordinator.proc->exit_status();
      if (status == 0) {
        if (progress) progress->Done();
        launcher.log().Own("pipeline finished; stopping the services");
        launcher.StopAll(all, 30);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (options.echo_logs) {
          PrintSummary(run_dir);
          std::cout << absl::StrFormat("wall time %.1f s\n", secs);
        }
        return 0;
      }
      if (status < 128) {
        // The coordinator decided to fail (bad config, a failed stage): not a crash.
        if (progress) progress->Done();
        launcher.log().Own(absl::StrCat("coordinator failed with status ", status, "; see ", coordinator.log_file(),
                                        ":\n", Tail(coordinator.log_file(), 5)));
        launcher.StopAll(all, 30);
        return status == 2 ? 2 : 1;
      }
    }
    for (Service* s : all) {
      // Exit 0 is not a crash: the learner and the rollout servers exit 0 when the coordinator
      // tells them the pipeline has ended (it exits itself a moment later).
      if (s->proc && !s->proc->running() && !s->stopping && s->proc->exit_status() == 0) s->stopping = true;
      if (s->proc && !s->proc->running() && !s->stopping) {
        if (absl::Status st = launcher.Restart(s); !st.ok()) return fail(st);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int RunLaunch(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv,
                          {"config", "run-dir", "rollouts", "token-dir", "token-file", "tls-cert", "tls-key",
                           "tls-ca", "max-restarts", "rollout-device", "rollout-devices"},
                          {"help", "quiet", "insecure"});
  if (!args.ok()) return FailWithStatus(args.status());
  if (args->Has("help")) {
    std::cout << "usage: swarr launch --config PIPELINE.yaml --run-dir DIR [--rollouts N (2)]\n"
                 "         [--max-restarts K (3)] [--rollout-devices LIST] [--quiet]\n"
                 "         [--token-dir D | --insecure] [--tls-cert F --tls-key F] [--tls-ca F]\n"
                 "  --quiet: service logs only in DIR/logs/, a progress line instead\n"
                 "  --token-dir D: per-role tokens D/<role>.token for the services (default: random ones\n"
                 "    made in DIR/tokens, mode 0600); --insecure: the services take calls without tokens\n"
                 "  --rollout-devices: rollout i runs on the i-th device, cycling (cpu, cuda, cuda:N, ranges\n"
                 "    cuda:A..B, comma-separated; --rollout-device is the same); default: the config's\n"
                 "    placement.rollouts, else cpu. The learner's device: placement.learner or each stage's\n"
                 "    model.device. A GPU shared by several services needs placement.*_memory_gib.\n";
    return 0;
  }
  LaunchOptions opts;
  auto config_path = args->Required("config");
  if (!config_path.ok()) return FailWithStatus(config_path.status());
  opts.config_path = *config_path;
  auto run_dir = args->Required("run-dir");
  if (!run_dir.ok()) return FailWithStatus(run_dir.status());
  opts.run_dir = *run_dir;
  auto rollouts = args->Int("rollouts");
  if (!rollouts.ok()) return FailWithStatus(rollouts.status());
  const int64_t n_rollouts = rollouts->value_or(2);
  if (n_rollouts < 0 || n_rollouts > 64) {
    return FailWithStatus(absl::InvalidArgumentError(absl::StrCat("--rollouts must be in [0, 64], got ", n_rollouts)));
  }
  opts.rollouts = static_cast<int>(n_rollouts);
  auto max_restarts = args->Int("max-restarts");
  if (!max_restarts.ok()) return FailWithStatus(max_restarts.status());
  opts.max_restarts = static_cast<int>(max_restarts->value_or(3));
  opts.rollout_devices = args->Optional("rollout-devices").value_or(args->Optional("rollout-device").value_or(""));
  opts.echo_logs = !args->Has("quiet");
  if (args->Has("token-file")) {
    return FailWithStatus(absl::InvalidArgumentError(
        "--token-file: the services take per-role tokens now: --token-dir DIR with DIR/<role>.token files (rollout, "
        "learner, coordinator, operator), or nothing (random ones are made in RUN_DIR/tokens), or --insecure"));
  }
  opts.token_dir = args->Optional("token-dir").value_or("");
  opts.insecure = args->Has("insecure");
  for (const char* flag : {"tls-cert", "tls-key", "tls-ca"}) {
    if (auto v = args->Optional(flag)) opts.tls_flags.insert(opts.tls_flags.end(), {std::string("--") + flag, *v});
  }
  return LaunchPipeline(opts);
}

}  // namespace swarr
