// swarr rollout --coordinator ADDR [flags]: one rollout server (docs/rollout.md). Runs until
// SIGTERM / SIGINT, then drains (returns unstarted groups, finishes and pushes running ones
// for at most --drain-seconds, sends a last heartbeat) and exits 0.
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "rollout_server/rollout_server.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/security_flags.h"

namespace swarr {
namespace {

constexpr char kRolloutUsage[] =
    "usage: swarr rollout --coordinator HOST:PORT [flags]\n"
    "  --name N                 name in the coordinator's status (default: the address)\n"
    "  --listen HOST:PORT       gRPC address, port 0 = any free one (default 127.0.0.1:0)\n"
    "  --port-file FILE         write the bound gRPC port there\n"
    "  --metrics-listen H:P     Prometheus /metrics (\"\" = none; default 127.0.0.1:0)\n"
    "  --metrics-port-file FILE write the bound metrics port there\n"
    "  --max-sequences N        sequences decoded at once (default: the pipeline's)\n"
    "  --max-tokens N           prompt + max_new_tokens held in flight, 0 = no limit (default: the pipeline's)\n"
    "  --drain-seconds S        longest drain on SIGTERM (default 30)\n"
    "  --device cpu|cuda[:N]    where the model runs (default cpu); --dtype float32|bfloat16|float16\n"
    "  --memory-gib G           cap this server's GPU memory at G GiB (a GPU shared with other services)\n"
    "  --learner HOST:PORT      the learner (default: the address the coordinator gives);\n"
    "                           without --coordinator: standalone (Rollout service only)\n";

int g_signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  (void)!write(g_signal_pipe[1], &b, 1);
}

absl::StatusOr<RolloutServerOptions> ParseFlags(const std::vector<std::string>& argv) {
  SWARR_ASSIGN_OR_RETURN(
      Args args, Args::Parse(argv,
                             WithServiceSecurityFlags({"coordinator", "learner", "name", "listen", "port-file",
                                                       "metrics-listen", "metrics-port-file", "max-sequences",
                                                       "max-tokens", "drain-seconds", "device", "dtype", "memory-gib"}),
                             {kInsecureFlag}));
  RolloutServerOptions o;
  o.coordinator_address = args.Optional("coordinator").value_or("");
  o.learner_address = args.Optional("learner").value_or("");
  if (o.coordinator_address.empty() && o.learner_address.empty()) {
    return absl::InvalidArgumentError("--coordinator is required (or --learner for a standalone server)");
  }
  o.name = args.Optional("name").value_or("");
  o.listen = args.Optional("listen").value_or(o.listen);
  o.port_file = args.Optional("port-file").value_or("");
  o.metrics_listen = args.Optional("metrics-listen").value_or(o.metrics_listen);
  o.metrics_port_file = args.Optional("metrics-port-file").value_or("");
  SWARR_ASSIGN_OR_RETURN(auto max_sequences, args.Int("max-sequences"));
  SWARR_ASSIGN_OR_RETURN(auto max_tokens, args.Int("max-tokens"));
  SWARR_ASSIGN_OR_RETURN(auto drain, args.Double("drain-seconds"));
  o.max_sequences = max_sequences;
  o.max_tokens = max_tokens;
  if (drain.has_value()) o.drain_seconds = *drain;
  o.device = args.Optional("device").value_or("cpu");
  o.dtype = args.Optional("dtype").value_or("");
  SWARR_ASSIGN_OR_RETURN(auto memory_gib, args.Double("memory-gib"));
  if (memory_gib.has_value()) {
    if (!(*memory_gib > 0)) return absl::InvalidArgumentError(absl::StrCat("--memory-gib must be > 0, got ", *memory_gib));
    o.memory_gib = *memory_gib;
  }
  if (!o.dtype.empty() && o.dtype != "float32" && o.dtype != "bfloat16" && o.dtype != "float16") {
    return absl::InvalidArgumentError(absl::StrCat("--dtype: '", o.dtype, "' (float32, bfloat16, float16)"));
  }
  SWARR_ASSIGN_OR_RETURN(o.security, ServiceSecurityFromArgs(args, Role::kRollout));
  return o;
}

}  // namespace

int RunRollout(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << kRolloutUsage << kServiceSecurityUsage;
      return 0;
    }
  }
  absl::StatusOr<RolloutServerOptions> options = ParseFlags(args);
  if (!options.ok()) return FailWithStatus(options.status());

  // SIGTERM / SIGINT: the handler only writes the signal to a pipe (async-signal-safe); a
  // thread of ours reads it and starts the drain. (Threads that LibTorch or gRPC started
  // before this point may be the ones the signal is delivered to: a handler covers them.)
  if (pipe(g_signal_pipe) != 0) return FailWithStatus(absl::InternalError("pipe() failed"));
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  absl::StatusOr<std::unique_ptr<RolloutServer>> server = RolloutServer::Start(*options);
  if (!server.ok()) return FailWithStatus(server.status());
  RolloutServer* s = server->get();
  std::thread signal_thread([s] {
    unsigned char sig = 0;
    while (read(g_signal_pipe[0], &sig, 1) == 1) {
      if (sig == 0) return;  // exiting
      std::cerr << "rollout: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ": draining\n";
      s->Drain();
    }
  });
  const absl::Status result = (*server)->Wait();
  const unsigned char quit = 0;
  (void)!write(g_signal_pipe[1], &quit, 1);
  signal_thread.join();
  server->reset();
  if (!result.ok()) return FailWithStatus(result);
  return 0;
}

}  // namespace swarr
