// The CI side of a fuzz target (fuzz/fuzz_target.h): runs the target on its seeds, on every
// file under the directories given (the committed corpus and regressions), then on seeded
// random mutations of those inputs (bit flips, byte sets, truncations, insertions, splices)
// for --seconds (default 2). A crash or sanitizer report ends the process: the test fails.
//   fuzz_X_replay [--seconds S] [--seed N] [--write-seeds DIR] DIR...
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz/fuzz_target.h"

namespace {

void Collect(const std::string& path, std::vector<std::string>* out) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR* d = opendir(path.c_str());
    if (d == nullptr) return;
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) Collect(path + "/" + n, out);
    return;
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  out->push_back(ss.str());
}

const std::string* g_current = nullptr;
std::string g_crash_path;

// On a crash: the input that caused it goes to a file (a regression test to commit under
// fuzz/regressions/<target>/ once fixed), then the signal takes its default course.
void OnCrash(int sig) {
  if (g_current != nullptr) {
    if (FILE* f = std::fopen(g_crash_path.c_str(), "wb")) {
      std::fwrite(g_current->data(), 1, g_current->size(), f);
      std::fclose(f);
      std::fprintf(stderr, "\nthe crashing input (%zu bytes) is in %s\n", g_current->size(), g_crash_path.c_str());
    }
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void Run(const std::string& s) {
  g_current = &s;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  g_current = nullptr;
}

std::string Mutate(const std::vector<std::string>& pool, std::mt19937_64& rng) {
  std::string s = pool[rng() % pool.size()];
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < edits; ++k) {
    const size_t n = s.size();
    switch (rng() % 6) {
      case 0:
        if (n) s[rng() % n] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:
        if (n) s[rng() % n] = static_cast<char>(rng() % 256);
        break;
      case 2:
        if (n) s.resize(rng() % n);
        break;
      case 3:
        s.insert(n ? rng() % n : 0, 1 + rng() % 8, static_cast<char>(rng() % 256));
        break;
      case 4: {  // splice with another input
        const std::string& o = pool[rng() % pool.size()];
        if (!o.empty() && n) s = s.substr(0, rng() % n) + o.substr(rng() % o.size());
        break;
      }
      default: {  // an interesting value
        static const char* kTokens[] = {"0", "-1", "4294967296", "1e308", "nan", "{", "}", "[", "]", "\"", "\\",
                                        ":", "\n", "\xff", "9223372036854775807", "{{", "\\boxed{"};
        s.insert(n ? rng() % n : 0, kTokens[rng() % (sizeof(kTokens) / sizeof(kTokens[0]))]);
      }
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2;
  uint64_t seed = 1;
  std::string write_seeds;
  g_crash_path = std::string("/tmp/fuzz-crash-") + (std::strrchr(argv[0], '/') ? std::strrchr(argv[0], '/') + 1 : argv[0]);
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP}) std::signal(sig, OnCrash);
  std::vector<std::string> pool = swarr_fuzz::FuzzSeeds();
  const size_t n_seeds = pool.size();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--write-seeds" && i + 1 < argc) {
      write_seeds = argv[++i];
    } else {
      Collect(a, &pool);
    }
  }
  if (!write_seeds.empty()) {
    mkdir(write_seeds.c_str(), 0755);
    for (size_t k = 0; k < n_seeds; ++k) {
      std::ofstream(write_seeds + "/seed-" + std::to_string(k), std::ios::binary) << pool[k];
    }
    std::printf("wrote %zu seeds to %s\n", n_seeds, write_seeds.c_str());
    return 0;
  }
  for (const auto& s : pool) Run(s);
  if (pool.empty()) pool.push_back("");
  std::mt19937_64 rng(seed);
  int64_t mutated = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    for (int k = 0; k < 64; ++k, ++mutated) Run(Mutate(pool, rng));
  }
  std::printf("%zu inputs (%zu seeds), %lld mutations in %.1f s: no crash\n", pool.size(), n_seeds,
              static_cast<long long>(mutated), seconds);
  return 0;
}
