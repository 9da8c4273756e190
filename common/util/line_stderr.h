// Whole lines on stderr from many threads (issue 15: log lines of the services interleaved
// mid-line in container logs). std::cerr is unbuffered, so `std::cerr << "a" << x << "\n"` from
// two threads becomes several write(2) calls each, which interleave. MakeStderrLineAtomic gives
// std::cerr a stream buffer that collects each thread's output until a newline (or an explicit
// flush, e.g. a progress line ending in std::flush) and writes it with one locked write(2).
#ifndef SWARR_COMMON_UTIL_LINE_STDERR_H_
#define SWARR_COMMON_UTIL_LINE_STDERR_H_

namespace swarr {

// Idempotent; call early in main(). Output written to fd 2 by other means (C stdio, LibTorch's
// own logging) is not affected. A thread's unfinished line is written at its next newline or
// flush, and the main thread's at exit.
void MakeStderrLineAtomic();

}  // namespace swarr

#endif  // SWARR_COMMON_UTIL_LINE_STDERR_H_
