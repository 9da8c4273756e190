// The process supervisor behind `swarr launch` and `swarr demo`: starts the learner, the
// coordinator and N rollout servers of one pipeline as separate processes on loopback, restarts
// the ones that die, and stops them all when the pipeline ends or on SIGINT / SIGTERM.
#ifndef SWARR_TOOLS_LAUNCH_H_
#define SWARR_TOOLS_LAUNCH_H_

#include <string>
#include <vector>

namespace swarr {

struct LaunchOptions {
  std::string config_path;  // a pipeline YAML (already validated by the caller or not)
  std::string run_dir;
  int rollouts = 2;
  int max_restarts = 3;       // per service
  // Rollout devices, a comma list with ranges ("cuda:1..3"); "" = the config's placement.rollouts
  // (common/config/placement.h), else cpu.
  std::string rollout_devices;
  // Per-role tokens (docs/deploy.md "Security"), given to every service as --token-dir:
  // "" = RUN_DIR/tokens, where random ones are made (mode 0600) unless they exist already (a
  // resumed run keeps its tokens). The progress display sends DIR/operator.token.
  std::string token_dir;
  // Every service --insecure (no tokens made or sent). Not with token_dir.
  bool insecure = false;
  // --tls-cert / --tls-key / --tls-ca flags passed to every service, as "--flag", "value" pairs.
  std::vector<std::string> tls_flags;
  // true: every service's output on stdout, prefixed "[name] ". false: only to
  // RUN_DIR/logs/<name>.log, with a one-line progress display (stage, step, reward) instead.
  bool echo_logs = true;
};

// Runs the pipeline to its end. Returns the process exit status: 0 success, 2 a bad config
// (one line on stderr naming the field), 1 a failure, 128+signal when interrupted.
int LaunchPipeline(const LaunchOptions& options);

}  // namespace swarr

#endif  // SWARR_TOOLS_LAUNCH_H_
