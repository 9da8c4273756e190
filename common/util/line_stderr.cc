#include "common/util/line_stderr.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <mutex>
#include <streambuf>
#include <string>

namespace swarr {
namespace {

class LineAtomicStderrBuf : public std::streambuf {
 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    std::string& b = Pending();
    b.push_back(traits_type::to_char_type(c));
    if (c == '\n') Emit(b, b.size());
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    std::string& b = Pending();
    b.append(s, static_cast<size_t>(n));
    const size_t last = b.rfind('\n');
    if (last != std::string::npos && std::memchr(s, '\n', static_cast<size_t>(n)) != nullptr) Emit(b, last + 1);
    return n;
  }
  int sync() override {
    std::string& b = Pending();
    if (!b.empty()) Emit(b, b.size());
    return 0;
  }

 private:
  static std::string& Pending() {
    thread_local std::string pending;
    return pending;
  }
  // Writes the first `n` bytes of `b` as one block (one write(2) unless the pipe takes less),
  // under a lock so that blocks of different threads never mix, and drops them from `b`.
  static void Emit(std::string& b, size_t n) {
    static std::mutex mu;
    {
      std::lock_guard<std::mutex> lock(mu);
      size_t done = 0;
      while (done < n) {
        const ssize_t w = ::write(STDERR_FILENO, b.data() + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;  // stderr closed: drop the line
        done += static_cast<size_t>(w);
      }
    }
    b.erase(0, n);
  }
};

}  // namespace

void MakeStderrLineAtomic() {
  static LineAtomicStderrBuf* buf = [] {
    auto* b = new LineAtomicStderrBuf();  // lives for the process: std::cerr outlives main()
    std::cerr.flush();
    std::cerr.rdbuf(b);
    // unitbuf would flush (write) after every insertion, splitting lines again.
    std::cerr.unsetf(std::ios::unitbuf);
    return b;
  }();
  (void)buf;
}

}  // namespace swarr
