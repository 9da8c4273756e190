#include "common/metrics/exporter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/model/runtime.h"
#include "common/testing/http_get.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace swarr {
namespace {

std::string Get(int port, const std::string& path) { return testing_http::GetResponse(port, path); }

std::string Scrape(int port) { return Get(port, "/metrics"); }

// A raw loopback connection that sends `sent` and then nothing; -1 if refused.
int ConnectAndSend(int port, const std::string& sent) {
  const int fd = testing_http::ConnectLoopback(port);
  if (fd < 0) return -1;
  if (!sent.empty()) EXPECT_EQ(write(fd, sent.data(), sent.size()), static_cast<ssize_t>(sent.size()));
  return fd;
}

// True while the server holds `fd` open without having answered or closed it.
bool StillHeldByServer(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 0;
}

// Reads `fd` until the server closes it (EOF or reset), waiting at most `seconds` in all; false
// if it is still open then. What was read goes to `out` when given.
bool ClosedByServerWithin(int fd, int seconds, std::string* out = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return true;
    if (out != nullptr) out->append(buf, static_cast<size_t>(n));
  }
}

// Clients that stall: connected and silent, half a request line, a request line without the
// end of its head.
std::vector<int> StuckClients(int port, int count) {
  const std::string partial[] = {"", "GET /metr", "GET /metrics HTTP/1.1\r\nHost: x\r\n"};
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) fds.push_back(ConnectAndSend(port, partial[i % 3]));
  return fds;
}

// In a process that has LibTorch loaded and initialised, like every SWARR service (civetweb,
// prometheus-cpp's own server, could not start its threads there).
TEST(MetricsExporterTest, ServesRegisteredMetrics) {
  InitTorchRuntime();
  auto e = MetricsExporter::Start("127.0.0.1:0", "test");
  ASSERT_GT(e->port(), 0);
  auto& family = prometheus::BuildCounter().Name("swarr_test_events_total").Help("Events.").Register(e->registry());
  family.Add({}).Increment(3);
  const std::string response = Scrape(e->port());
  EXPECT_NE(response.find("swarr_test_events_total 3"), std::string::npos) << response;
  EXPECT_EQ(response.find(" 200 OK\r\n"), 8u) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << response;
  EXPECT_NE(response.find(e->Render()), std::string::npos);
  EXPECT_NE(Scrape(e->port()).find("swarr_test_events_total 3"), std::string::npos);
  EXPECT_NE(Get(e->port(), "/metrics?name[]=x").find("swarr_test_events_total 3"), std::string::npos);
  EXPECT_EQ(Get(e->port(), "/other").find(" 404 "), 8u);
  EXPECT_EQ(Get(e->port(), "/metrics/x").find(" 404 "), 8u);
  // Many scrapes in a row (Prometheus scrapes forever).
  for (int i = 0; i < 50; ++i) ASSERT_NE(Scrape(e->port()).find("swarr_test_events_total"), std::string::npos);
}

TEST(MetricsExporterTest, BusyPortIsLoggedAndTheServiceRunsOn) {
  auto first = MetricsExporter::Start("127.0.0.1:0", "first");
  ASSERT_GT(first->port(), 0);
  auto second = MetricsExporter::Start("127.0.0.1:" + std::to_string(first->port()), "second");
  EXPECT_EQ(second->port(), 0);
  prometheus::BuildCounter().Name("swarr_test_total").Help("x").Register(second->registry()).Add({}).Increment();
  EXPECT_NE(second->Render().find("swarr_test_total 1"), std::string::npos);
  EXPECT_NE(Scrape(first->port()).find(" 200 OK"), std::string::npos);  // the first one still serves
  auto none = MetricsExporter::Start("", "none");
  EXPECT_EQ(none->port(), 0);
  EXPECT_EQ(MetricsExporter::Start("no-port", "bad")->port(), 0);
  EXPECT_EQ(MetricsExporter::Start("127.0.0.1:99999", "bad")->port(), 0);
}

TEST(MetricsExporterTest, EmptyHostListensOnAllInterfaces) {
  auto e = MetricsExporter::Start(":0", "any");
  ASSERT_GT(e->port(), 0);
  EXPECT_NE(Scrape(e->port()).find(" 200 OK"), std::string::npos);
}

// Stopping right after starting (the accept loop may not have begun yet) must not hang.
TEST(MetricsExporterTest, StartAndStopAtOnce) {
  for (int i = 0; i < 20; ++i) {
    auto e = MetricsExporter::Start("127.0.0.1:0", "quick");
    ASSERT_GT(e->port(), 0);
  }
}

// Clients that connect and stall hold a worker each, but a concurrent scrape is answered while
// they are still held (a one-thread server would reach it only after dropping them).
TEST(MetricsExporterTest, StuckClientsDoNotBlockAScrape) {
  InitTorchRuntime();
  auto e = MetricsExporter::Start("127.0.0.1:0", "test");
  ASSERT_GT(e->port(), 0);
  const std::vector<int> stuck = StuckClients(e->port(), MetricsExporter::kWorkerThreads - 1);
  for (int fd : stuck) ASSERT_GE(fd, 0);
  for (int i = 0; i < 5; ++i) {
    EXPECT_NE(Scrape(e->port()).find(" 200 OK"), std::string::npos);
  }
  for (size_t i = 0; i < stuck.size(); ++i) {
    EXPECT_TRUE(StillHeldByServer(stuck[i])) << "stuck client " << i << " was dropped before the scrape was answered";
  }
  for (int fd : stuck) close(fd);
}

// A stalled connection is dropped after the I/O timeout, so even with every worker stuck a
// scrape is answered within a bound, and the exporter still stops.
TEST(MetricsExporterTest, StuckClientsAreDroppedAfterTheTimeout) {
  auto e = MetricsExporter::Start("127.0.0.1:0", "test");
  ASSERT_GT(e->port(), 0);
  const std::vector<int> stuck = StuckClients(e->port(), MetricsExporter::kWorkerThreads);
  for (int fd : stuck) ASSERT_GE(fd, 0);
  const int scrape = ConnectAndSend(e->port(), "GET /metrics HTTP/1.0\r\n\r\n");
  ASSERT_GE(scrape, 0);
  // Generous bound: many times the timeout.
  const int bound_s = 12 * MetricsExporter::kIoTimeoutSeconds;
  std::string response;
  EXPECT_TRUE(ClosedByServerWithin(scrape, bound_s, &response));
  EXPECT_NE(response.find(" 200 OK"), std::string::npos) << response;
  for (size_t i = 0; i < stuck.size(); ++i) {
    EXPECT_TRUE(ClosedByServerWithin(stuck[i], bound_s)) << "stuck client " << i << " still held";
  }
  const int late = ConnectAndSend(e->port(), "GET /metr");
  ASSERT_GE(late, 0);
  e.reset();  // joins its threads while `late` may still be stuck
  EXPECT_TRUE(ClosedByServerWithin(late, bound_s));
  for (int fd : stuck) close(fd);
  close(scrape);
  close(late);
}

}  // namespace
}  // namespace swarr
