// swarr fetch-weights: times one weight load from a running learner by each path a rollout
// server uses (docs/weight-sync.md): "grpc" (Learner.GetWeights stream, decode, copy onto the
// device) and "ipc" (Learner.GetWeightsIpc, map, device-to-device copy, checksum). One JSON line
// per load: {"path", "version", "bytes", "seconds"} or {"path", "error"}. Exit 0 when every
// asked path worked, 1 otherwise, 2 for bad flags. bench/gpu/rehearsal.sh uses it for the
// handoff figures of bench/results/gpu_rehearsal.json.
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/rpc/service_options.h"
#include "common/rpc/weights_wire.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"
#include "nlohmann/json.hpp"
#include "proto/swarr/v1/learner.grpc.pb.h"
#include "rollout_server/weights.h"
#include "rollout_server/weights_ipc.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/security_flags.h"

namespace swarr {
namespace {

constexpr char kUsage[] =
    "usage: swarr fetch-weights --learner HOST:PORT [--version N (default: the latest)]\n"
    "         [--device cpu|cuda[:N] (cpu)] [--path grpc|ipc|both (both)] [--repeat K (1)]\n"
    "         [--token-file F | --token-dir D (D/operator.token)] [--tls-ca F] [--tls-cert F --tls-key F]\n"
    "Times weight loads from a running learner by each path; one JSON line per load.\n";

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// GetWeights + decode + every tensor onto `device`: what a rollout server's network path does
// before its swap.
absl::StatusOr<int64_t> LoadOverGrpc(v1::Learner::StubInterface& stub, const v1::GetWeightsRequest& req,
                                     const std::string& device, const RpcSecurity& security, const RpcLimits& limits,
                                     v1::WeightVersion* version) {
  SWARR_ASSIGN_OR_RETURN(WeightsBlob blob, FetchWeights(stub, req, security, limits, std::max(120.0, limits.deadline_seconds)));
  *version = blob.version;
  const int64_t bytes = static_cast<int64_t>(blob.data.size());
  SWARR_ASSIGN_OR_RETURN(DecodedWeights w, DecodeWeights(blob));
  SWARR_RETURN_IF_ERROR(CatchTorch("copying onto the device", [&]() -> absl::Status {
    for (auto& [name, t] : w.tensors) t = t.to(at::Device(device));
    if (!w.tensors.empty()) (void)w.tensors.back().second.sum().item<double>();  // wait for the copies
    return absl::OkStatus();
  }));
  return bytes;
}

absl::Status FetchWeightsCommand(const std::vector<std::string>& argv) {
  SWARR_ASSIGN_OR_RETURN(Args args, Args::Parse(argv, WithClientSecurityFlags({"learner", "version", "device", "path",
                                                                              "repeat"}),
                                                {"help"}));
  if (args.Has("help")) {
    std::cout << kUsage;
    return absl::OkStatus();
  }
  SWARR_ASSIGN_OR_RETURN(std::string learner, args.Required("learner"));
  SWARR_ASSIGN_OR_RETURN(auto version, args.Int("version"));
  SWARR_ASSIGN_OR_RETURN(auto repeat, args.Int("repeat"));
  const std::string device = args.Optional("device").value_or("cpu");
  const std::string path = args.Optional("path").value_or("both");
  if (path != "grpc" && path != "ipc" && path != "both") {
    return absl::InvalidArgumentError(absl::StrCat("--path must be grpc, ipc or both, got '", path, "'"));
  }
  if (repeat.has_value() && (*repeat < 1 || *repeat > 100)) {
    return absl::InvalidArgumentError(absl::StrCat("--repeat must be in [1, 100], got ", *repeat));
  }
  SWARR_ASSIGN_OR_RETURN(RpcSecurity security, ClientSecurityFromArgs(args));
  RpcLimits limits;
  limits.max_message_bytes = int64_t{1} << 30;
  SWARR_ASSIGN_OR_RETURN(auto channel, MakeChannel(learner, security, limits));
  auto stub = v1::Learner::NewStub(channel);
  v1::GetWeightsRequest req;
  if (version.has_value()) {
    req.set_version(*version);
  } else {
    req.set_latest(true);
  }
  std::vector<std::string> paths;
  if (path != "ipc") paths.push_back("grpc");
  if (path != "grpc") paths.push_back("ipc");
  bool all_ok = true;
  std::string first_error;
  for (int64_t k = 0; k < repeat.value_or(1); ++k) {
    for (const std::string& p : paths) {
      nlohmann::json line = {{"path", p}, {"device", device}};
      const auto start = std::chrono::steady_clock::now();
      absl::StatusOr<int64_t> bytes;
      v1::WeightVersion got;
      if (p == "grpc") {
        bytes = LoadOverGrpc(*stub, req, device, security, limits, &got);
      } else {
        absl::StatusOr<DecodedWeights> w = FetchWeightsIpc(*stub, req, device, security, limits);
        if (w.ok()) {
          got = w->version;
          bytes = w->bytes;
        } else {
          bytes = w.status();
        }
      }
      const double seconds = Since(start);
      if (bytes.ok()) {
        line["version"] = got.version();
        line["bytes"] = *bytes;
        line["seconds"] = seconds;
      } else {
        line["error"] = bytes.status().ToString();
        all_ok = false;
        if (first_error.empty()) first_error = absl::StrCat(p, ": ", bytes.status().message());
      }
      std::cout << line.dump() << std::endl;
    }
  }
  if (!all_ok) return absl::UnavailableError(absl::StrCat("a load failed (", first_error, ")"));
  return absl::OkStatus();
}

}  // namespace

int RunFetchWeights(const std::vector<std::string>& args) {
  absl::Status st = FetchWeightsCommand(args);
  return st.ok() ? 0 : FailWithStatus(st);
}

}  // namespace swarr
