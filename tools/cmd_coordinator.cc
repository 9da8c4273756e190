// swarr coordinator --config PIPELINE.yaml --run-dir D --learner ADDR [service flags]: runs the
// pipeline's coordinator until the pipeline ends (exit 0, or 1 when a stage failed) or SIGTERM /
// SIGINT (state saved, exit 0).
// swarr status --coordinator ADDR [--token-file F | --token-dir D] [--tls-ca F] [--json]: where a
// pipeline is.
#include <csignal>

#include <atomic>
#include <iostream>

#include <grpcpp/grpcpp.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "common/config/config_loader.h"
#include "common/rpc/service_options.h"
#include "common/rpc/status.h"
#include "common/util/file.h"
#include "coordinator/service.h"
#include "coordinator/status_format.h"
#include "proto/swarr/v1/coordinator.grpc.pb.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/security_flags.h"

namespace swarr {
namespace {

constexpr char kCoordinatorUsage[] =
    "usage: swarr coordinator --config PIPELINE.yaml --run-dir DIR --learner HOST:PORT\n"
    "         [--listen HOST:PORT] [--port-file F] [--metrics-listen HOST:PORT] [--metrics-port-file F]\n"
    "         (--token-dir D | --insecure) [--tls-cert F --tls-key F] [--tls-ca F] [--at-end exit|idle]\n"
    "--at-end: when the pipeline ends, the learner and the rollout servers exit 0 (exit, the default)\n"
    "or stay up idle until stopped (idle); docs/deploy.md \"How a run ends\".\n"
    "Runs the pipeline's stages (docs/services.md, docs/coordinator.md). Without --port-file /\n"
    "--metrics-port-file the bound ports go to DIR/ports/coordinator.port / .metrics.port.\n";

constexpr char kStatusUsage[] =
    "usage: swarr status --coordinator HOST:PORT [--token-file F | --token-dir D] [--tls-ca F]\n"
    "         [--tls-cert F --tls-key F] [--json]\n"
    "--token-file F (or env SWARR_TOKEN): the token sent; --token-dir D: D/operator.token.\n";

std::atomic<int> g_signal{0};

void OnSignal(int sig) { g_signal.store(sig); }

std::string BaseNameWithoutExtension(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const size_t dot = base.find_last_of('.');
  if (dot != std::string::npos && dot > 0) base = base.substr(0, dot);
  return base;
}

}  // namespace

int RunCoordinator(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv,
                          WithServiceSecurityFlags({"config", "run-dir", "learner", "listen", "port-file",
                                                    "metrics-listen", "metrics-port-file", "at-end"}),
                          {"help", kInsecureFlag});
  if (!args.ok()) return FailWithStatus(args.status());
  if (args->Has("help")) {
    std::cout << kCoordinatorUsage << kServiceSecurityUsage;
    return 0;
  }
  auto config = args->Required("config");
  if (!config.ok()) return FailWithStatus(config.status());
  auto run_dir = args->Required("run-dir");
  if (!run_dir.ok()) return FailWithStatus(run_dir.status());
  auto learner = args->Required("learner");
  if (!learner.ok()) return FailWithStatus(learner.status());

  v1::PipelineConfig pipeline;
  if (absl::Status s = LoadYamlConfig(*config, &pipeline); !s.ok()) return FailWithStatus(s);
  if (absl::Status s = ValidatePipeline(pipeline); !s.ok()) {
    return FailWithStatus(absl::Status(s.code(), absl::StrCat(*config, ": ", s.message())));
  }
  if (pipeline.name().empty()) pipeline.set_name(BaseNameWithoutExtension(*config));

  auto security = ServiceSecurityFromArgs(*args, Role::kCoordinator);
  if (!security.ok()) return FailWithStatus(security.status());

  CoordinatorServerOptions opts;
  opts.coordinator.pipeline = pipeline;
  opts.coordinator.run_dir = *run_dir;
  opts.coordinator.learner_address = *learner;
  opts.coordinator.security = *security;
  opts.listen = args->Optional("listen").value_or("127.0.0.1:0");
  opts.metrics_listen = args->Optional("metrics-listen").value_or("127.0.0.1:0");
  if (const std::string at_end = args->Optional("at-end").value_or("exit"); at_end == "idle") {
    opts.coordinator.at_end = CoordinatorOptions::AtEnd::kIdle;
  } else if (at_end != "exit") {
    return FailWithStatus(absl::InvalidArgumentError(absl::StrCat("--at-end: 'exit' or 'idle', got '", at_end, "'")));
  }

  // SIGTERM / SIGINT: persist and exit 0. The handler only sets a flag the main thread polls.
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  auto server = CoordinatorServer::Start(opts);
  if (!server.ok()) return FailWithStatus(server.status());
  const std::string port_file = args->Optional("port-file").value_or(*run_dir + "/ports/coordinator.port");
  const std::string metrics_port_file =
      args->Optional("metrics-port-file").value_or(*run_dir + "/ports/coordinator.metrics.port");
  auto write_port = [](const std::string& path, int port) -> absl::Status {
    const size_t slash = path.find_last_of('/');
    if (slash != std::string::npos && slash > 0) {
      if (absl::Status s = MakeDirs(path.substr(0, slash)); !s.ok()) return s;
    }
    return WritePortFile(path, port);
  };
  if (absl::Status s = write_port(port_file, (*server)->port()); !s.ok()) return FailWithStatus(s);
  if ((*server)->metrics_port() > 0) {
    if (absl::Status s = write_port(metrics_port_file, (*server)->metrics_port()); !s.ok()) return FailWithStatus(s);
  }
  std::cerr << "swarr coordinator: pipeline " << pipeline.name() << " (" << pipeline.stages_size()
            << " stages), incarnation " << (*server)->coordinator().incarnation() << ", listening on port "
            << (*server)->port() << ", metrics on port " << (*server)->metrics_port() << ", learner " << *learner
            << "\n";

  while (!(*server)->WaitForDone(absl::Milliseconds(100))) {
    if (const int sig = g_signal.load(); sig != 0) {
      (*server)->Shutdown();
      std::cerr << "swarr coordinator: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ": state saved in "
                << *run_dir << "/coordinator/state.json\n";
      return 0;
    }
  }
  const absl::Status result = (*server)->coordinator().result();
  // Answer the workers' heartbeats until each has heard that the pipeline ended.
  (*server)->coordinator().WaitForWorkersReleased();
  (*server)->Shutdown();
  if (!result.ok()) {
    std::cerr << "swarr: " << result.message() << "\n";
    return 1;
  }
  return 0;
}

int RunStatus(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv, WithClientSecurityFlags({"coordinator"}), {"json", "help"});
  if (!args.ok()) return FailWithStatus(args.status());
  if (args->Has("help")) {
    std::cout << kStatusUsage;
    return 0;
  }
  auto address = args->Required("coordinator");
  if (!address.ok()) return FailWithStatus(address.status());
  auto security = ClientSecurityFromArgs(*args);
  if (!security.ok()) return FailWithStatus(security.status());
  RpcLimits limits;
  auto channel = MakeChannel(*address, *security, limits);
  if (!channel.ok()) return FailWithStatus(channel.status());
  auto stub = v1::Coordinator::NewStub(*channel);
  grpc::ClientContext ctx;
  PrepareContext(&ctx, *security, limits, 10);
  v1::PipelineStatus status;
  grpc::Status s = stub->GetStatus(&ctx, v1::GetPipelineStatusRequest(), &status);
  if (!s.ok()) {
    const absl::Status a = FromGrpcStatus(s);
    std::cerr << "swarr: coordinator " << *address << ": " << absl::StatusCodeToString(a.code()) << ": "
              << a.message() << "\n";
    return a.code() == absl::StatusCode::kUnauthenticated ? 2 : 1;
  }
  if (args->Has("json")) {
    google::protobuf::util::JsonPrintOptions opts;
    // The canonical proto3 JSON mapping (lowerCamelCase keys, int64 as strings), zeros included.
    opts.add_whitespace = true;
    opts.always_print_primitive_fields = true;
    std::string json;
    if (!google::protobuf::util::MessageToJsonString(status, &json, opts).ok()) {
      std::cerr << "swarr: cannot print the status as JSON\n";
      return 1;
    }
    std::cout << json;
    if (json.empty() || json.back() != '\n') std::cout << "\n";
    return 0;
  }
  std::cout << FormatPipelineStatus(status);
  return 0;
}

}  // namespace swarr
