#include "common/metrics/exporter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "common/model/runtime.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace swarr {
namespace {

// GET `path` over a plain socket; the whole response.
std::string Get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

std::string Scrape(int port) { return Get(port, "/metrics"); }

// In a process that has LibTorch loaded and initialised, like every SWARR service (civetweb,
// prometheus-cpp's own server, could not start its threads there).
TEST(MetricsExporterTest, ServesRegisteredMetrics) {
  InitTorchRuntime();
  auto e = MetricsExporter::Start("127.0.0.1:0", "test");
  ASSERT_GT(e->port(), 0);
  auto& family = prometheus::BuildCounter().Name("swarr_test_events_total").Help("Events.").Register(e->registry());
  family.Add({}).Increment(3);
  const std::string body = Scrape(e->port());
  EXPECT_NE(body.find("swarr_test_events_total 3"), std::string::npos) << body;
  EXPECT_NE(body.find("HTTP/1.0 200 OK"), std::string::npos) << body;
  EXPECT_NE(body.find(e->Render()), std::string::npos);
  EXPECT_NE(Get(e->port(), "/other").find("404"), std::string::npos);
  // Many scrapes in a row (Prometheus scrapes forever).
  for (int i = 0; i < 50; ++i) ASSERT_NE(Scrape(e->port()).find("swarr_test_events_total"), std::string::npos);
}

TEST(MetricsExporterTest, BusyPortIsLoggedAndTheServiceRunsOn) {
  auto first = MetricsExporter::Start("127.0.0.1:0", "first");
  ASSERT_GT(first->port(), 0);
  auto second = MetricsExporter::Start("127.0.0.1:" + std::to_string(first->port()), "second");
  EXPECT_EQ(second->port(), 0);
  prometheus::BuildCounter().Name("swarr_test_total").Help("x").Register(second->registry()).Add({}).Increment();
  auto none = MetricsExporter::Start("", "none");
  EXPECT_EQ(none->port(), 0);
}

}  // namespace
}  // namespace swarr
