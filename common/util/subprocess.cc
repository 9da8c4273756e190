#include "common/util/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace swarr {

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv,
                                                               const Options& options) {
  if (argv.empty()) return absl::InvalidArgumentError("Subprocess: empty argv");
  int pipe_fds[2] = {-1, -1};
  int file_fd = -1;
  if (options.on_line) {
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  } else if (!options.output_file.empty()) {
    file_fd = open(options.output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (file_fd < 0) {
      return absl::InvalidArgumentError(absl::StrCat(options.output_file, ": ", std::strerror(errno)));
    }
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    const int out = options.on_line ? pipe_fds[1] : file_fd;
    if (out >= 0) {
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    execv(args[0], args.data());
    const char msg[] = "exec failed\n";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(127);
  }
  std::unique_ptr<Subprocess> p(new Subprocess());
  p->pid_ = pid;
  if (file_fd >= 0) close(file_fd);
  if (options.on_line) {
    close(pipe_fds[1]);
    p->out_fd_ = pipe_fds[0];
    auto on_line = options.on_line;
    const int fd = pipe_fds[0];
    p->reader_ = std::thread([fd, on_line] {
      std::string buf;
      char chunk[4096];
      while (true) {
        const ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buf.append(chunk, static_cast<size_t>(n));
        size_t nl;
        while ((nl = buf.find('\n')) != std::string::npos) {
          on_line(buf.substr(0, nl));
          buf.erase(0, nl + 1);
        }
      }
      if (!buf.empty()) on_line(buf);
    });
  }
  return p;
}

Subprocess::~Subprocess() {
  if (status_ < 0 && pid_ > 0) {
    kill(pid_, SIGKILL);
    Reap(true);
  }
  if (reader_.joinable()) reader_.join();
  if (out_fd_ >= 0) close(out_fd_);
}

bool Subprocess::Reap(bool block) {
  if (status_ >= 0) return true;
  int raw = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &raw, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return true;
}

bool Subprocess::running() { return !Reap(false); }

void Subprocess::Signal(int sig) {
  if (status_ < 0 && pid_ > 0) kill(pid_, sig);
}

int Subprocess::Wait(double seconds) {
  if (seconds < 0) {
    Reap(true);
  } else {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!Reap(false) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (status_ >= 0 && reader_.joinable()) reader_.join();
  return status_;
}

}  // namespace swarr
