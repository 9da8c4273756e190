// swarr learner --run-dir D [...]: the learner service (docs/services.md). Serves
// swarr.v1.Learner until SIGTERM / SIGINT or Learner.Finish (the coordinator, at the pipeline's
// end), which checkpoint the running stage and exit 0.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/metrics/exporter.h"
#include "common/rpc/service_options.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "learner/service/learner_service.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/security_flags.h"

namespace swarr {
namespace {

constexpr char kUsage[] =
    "usage: swarr learner --run-dir DIR [--listen HOST:PORT] [--port-file FILE]\n"
    "         [--metrics-listen HOST:PORT] [--metrics-port-file FILE] (--token-dir DIR | --insecure)\n"
    "         [--tls-cert FILE --tls-key FILE] [--tls-ca FILE] [--max-message-bytes N]\n"
    "         [--max-weight-streams N (2): GetWeights streams served at once, the rest wait in order]\n"
    "Serves swarr.v1.Learner (default 127.0.0.1:0) and /metrics (default 127.0.0.1:0; \"\" = off)\n"
    "until SIGTERM / SIGINT or the coordinator's Learner.Finish at the end of the pipeline, which\n"
    "checkpoint the running stage and exit 0.\n";

// The signal handler only writes a byte to this pipe; the main thread waits on it (whichever
// thread LibTorch or gRPC started receives the signal).
int g_signal_pipe[2] = {-1, -1};
// Written to the pipe by Learner.Finish (not a signal number).
constexpr char kFinishByte = 'F';

void OnSignal(int sig) {
  const char c = static_cast<char>(sig);
  const int saved = errno;
  (void)!::write(g_signal_pipe[1], &c, 1);
  errno = saved;
}

absl::Status InstallSignalHandlers() {
  if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) return absl::InternalError("cannot create the signal pipe");
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (::sigaction(SIGTERM, &sa, nullptr) != 0 || ::sigaction(SIGINT, &sa, nullptr) != 0) {
    return absl::InternalError("cannot install the SIGTERM / SIGINT handlers");
  }
  return absl::OkStatus();
}

int WaitForSignal() {
  char c = 0;
  while (::read(g_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
  }
  return c;
}

absl::Status Learner(const std::vector<std::string>& argv) {
  SWARR_ASSIGN_OR_RETURN(Args args,
                         Args::Parse(argv,
                                     WithServiceSecurityFlags({"run-dir", "listen", "port-file", "metrics-listen",
                                                               "metrics-port-file", "max-message-bytes",
                                                               "max-weight-streams"}),
                                     {"help", kInsecureFlag}));
  if (args.Has("help")) {
    std::cout << kUsage << kServiceSecurityUsage;
    return absl::OkStatus();
  }
  LearnerServiceOptions opts;
  SWARR_ASSIGN_OR_RETURN(opts.run_dir, args.Required("run-dir"));
  opts.listen = args.Optional("listen").value_or("127.0.0.1:0");
  opts.port_file = args.Optional("port-file").value_or("");
  SWARR_ASSIGN_OR_RETURN(opts.security, ServiceSecurityFromArgs(args, Role::kLearner));
  SWARR_ASSIGN_OR_RETURN(std::optional<int64_t> max_bytes, args.Int("max-message-bytes"));
  if (max_bytes.has_value()) {
    if (*max_bytes <= 0)
      return absl::InvalidArgumentError(absl::StrCat("--max-message-bytes must be > 0, got ", *max_bytes));
    opts.limits.max_message_bytes = *max_bytes;
  }
  SWARR_ASSIGN_OR_RETURN(std::optional<int64_t> streams, args.Int("max-weight-streams"));
  if (streams.has_value()) {
    if (*streams < 1 || *streams > 1024) {
      return absl::InvalidArgumentError(absl::StrCat("--max-weight-streams must be in [1, 1024], got ", *streams));
    }
    opts.max_weight_streams = *streams;
  }
  if (absl::Status st = MakeDirs(opts.run_dir); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--run-dir: ", st.message()));
  }
  SWARR_RETURN_IF_ERROR(InstallSignalHandlers());

  std::unique_ptr<MetricsExporter> exporter =
      MetricsExporter::Start(args.Optional("metrics-listen").value_or("127.0.0.1:0"), "swarr learner");
  if (auto file = args.Optional("metrics-port-file"); file.has_value() && exporter->port() > 0) {
    SWARR_RETURN_IF_ERROR(WritePortFile(*file, exporter->port()));
  }
  opts.metrics_registry = exporter->shared_registry();
  // Learner.Finish (the coordinator, at the end of the pipeline): wakes the wait below as a
  // signal would, with kFinishByte.
  opts.on_finish = [](const v1::FinishRequest&) {
    const char c = kFinishByte;
    (void)!::write(g_signal_pipe[1], &c, 1);
  };
  LearnerService service(opts);
  SWARR_RETURN_IF_ERROR(service.Start());
  std::cerr << "swarr learner: serving on port " << service.port() << " (incarnation "
            << service.engine().incarnation() << ", run directory " << opts.run_dir << ")";
  if (exporter->port() > 0) std::cerr << ", /metrics on port " << exporter->port();
  std::cerr << "\n";

  const int sig = WaitForSignal();
  std::cerr << "swarr learner: "
            << (sig == kFinishByte ? "the pipeline has ended" : sig == SIGINT ? "SIGINT" : "SIGTERM")
            << ": checkpointing the running stage and exiting\n";
  SWARR_RETURN_IF_ERROR(service.Shutdown());
  std::cerr << "swarr learner: stopped\n";
  return absl::OkStatus();
}

}  // namespace

int RunLearner(const std::vector<std::string>& args) {
  absl::Status st = Learner(args);
  return st.ok() ? 0 : FailWithStatus(st);
}

}  // namespace swarr
