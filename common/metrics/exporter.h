// A Prometheus /metrics endpoint for one service, and the registry its metrics live in.
// Metric names follow the Prometheus conventions: `swarr_` prefix, base units, `_total` for
// counters, `_seconds` / `_bytes` suffixes.
//
// The endpoint is a minimal HTTP/1.0 server of our own (one thread; GET /metrics answers the
// registry in the text exposition format, anything else 404). prometheus-cpp's civetweb
// exposer cannot start its threads in processes that link LibTorch: civetweb asks for a fixed
// small thread stack and the static TLS of LibTorch's libraries (OpenBLAS, glog) does not fit
// in it ("Cannot create first worker thread").
//
// A service must run without its exporter: if the address cannot be bound, Start logs one line
// and returns an exporter that serves nothing (port() == 0) but still accepts metrics.
#ifndef SWARR_COMMON_METRICS_EXPORTER_H_
#define SWARR_COMMON_METRICS_EXPORTER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace prometheus {
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
  // The text exposition of the registry (what GET /metrics answers).
  std::string Render() const;

 private:
  MetricsExporter() = default;
  void Serve();
  void Answer(int fd) const;

  std::shared_ptr<prometheus::Registry> registry_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace swarr

#endif  // SWARR_COMMON_METRICS_EXPORTER_H_
