#include "common/metrics/exporter.h"


#include <string>

#include "common/model/runtime.h"
#include "common/testing/http_get.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace swarr {
namespace {

std::string Get(int port, const std::string& path) { return testing_http::GetResponse(port, path); }

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
