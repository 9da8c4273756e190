// A Prometheus /metrics endpoint for one service (prometheus-cpp's pull exposer), and the
// registry its metrics live in. Metric names follow the Prometheus conventions: `swarr_`
// prefix, base units, `_total` for counters, `_seconds` / `_bytes` suffixes.
//
// A service must run without its exporter: if the address cannot be bound, Start logs one line
// and returns an exporter that serves nothing (port() == 0) but still accepts metrics.
#ifndef SWARR_COMMON_METRICS_EXPORTER_H_
#define SWARR_COMMON_METRICS_EXPORTER_H_

#include <memory>
#include <string>

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace swarr {

class MetricsExporter {
 public:
  // `bind_address`: "host:port" (port 0 = any free one), or "" for no endpoint at all.
  // `service` names the service in the log line.
  static std::unique_ptr<MetricsExporter> Start(const std::string& bind_address, const std::string& service);
  ~MetricsExporter();

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }
  // The bound port, 0 when not serving.
  int port() const { return port_; }

 private:
  MetricsExporter() = default;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace swarr

#endif  // SWARR_COMMON_METRICS_EXPORTER_H_
