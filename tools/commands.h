// `swarr` subcommands. Each takes the arguments after its name and returns the process exit
// status: 0 success, 2 bad arguments or input (after printing one line on stderr), 1 an
// internal failure.
#ifndef SWARR_TOOLS_COMMANDS_H_
#define SWARR_TOOLS_COMMANDS_H_

#include <string>
#include <vector>

namespace swarr {

int RunScore(const std::vector<std::string>& args);
int RunGenerate(const std::vector<std::string>& args);
int RunConvert(const std::vector<std::string>& args);
int RunTokenize(const std::vector<std::string>& args);
int RunVerify(const std::vector<std::string>& args);
int RunTrain(const std::vector<std::string>& args);
// Services (docs/services.md). Each runs until its work is done or SIGTERM / SIGINT.
int RunCoordinator(const std::vector<std::string>& args);  // tools/cmd_coordinator.cc
int RunLearner(const std::vector<std::string>& args);      // tools/cmd_learner.cc
int RunRollout(const std::vector<std::string>& args);      // tools/cmd_rollout.cc
int RunStatus(const std::vector<std::string>& args);       // tools/cmd_coordinator.cc
int RunLaunch(const std::vector<std::string>& args);       // tools/cmd_launch.cc
int RunDemo(const std::vector<std::string>& args);         // tools/cmd_demo.cc
int RunFetchWeights(const std::vector<std::string>& args);  // tools/cmd_fetch_weights.cc

}  // namespace swarr

#endif  // SWARR_TOOLS_COMMANDS_H_
