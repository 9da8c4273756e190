// A Prometheus /metrics endpoint for one service, and the registry its metrics live in.
// Metric names follow the Prometheus conventions: `swarr_` prefix, base units, `_total` for
// counters, `_seconds` / `_bytes` suffixes.
//
// The endpoint is cpp-httplib's server (Debian's libcpp-httplib-dev; only exporter.cc includes
// it): GET /metrics (HEAD too; a query string is ignored) answers the registry in the text
// exposition format, `Content-Type: text/plain; version=0.0.4`; any other path or method is 404.
// Its threads are std::threads with the default stack, so they start beside LibTorch's large
// static TLS (OpenBLAS, glog). prometheus-cpp's own civetweb exposer cannot: civetweb asks for a
// fixed small thread stack that TLS does not fit in ("Cannot create first worker thread").
//
// Slow or stuck clients: one listener thread accepts and hands each connection to a fixed pool
// of kWorkerThreads workers; a worker gives up on a connection that sends no request within
// kIoTimeoutSeconds, stalls that long in the middle of its request, or does not read the answer
// for that long. One connection per request (no keep-alive). So a scrape is answered at once
// while fewer than kWorkerThreads clients are stuck, and within about kIoTimeoutSeconds behind
// that many silent ones. (A client that trickles its request a byte at a time can hold a worker
// longer: cpp-httplib 0.11 times each read, not the whole request.)
//
// A service must run without its exporter: if the address cannot be bound, Start logs one line
// and returns an exporter that serves nothing (port() == 0) but still accepts metrics.
//
// Process-wide side effect: constructing cpp-httplib's server sets SIGPIPE to ignored (its
// writes do not pass MSG_NOSIGNAL), which children exec'd later inherit.
//
// Thread safety: registry() and Render() may be called from any thread; Start and the
// destructor from one. The destructor stops the server and joins its threads (at most about
// kIoTimeoutSeconds while a client is stuck).
#ifndef SWARR_COMMON_METRICS_EXPORTER_H_
#define SWARR_COMMON_METRICS_EXPORTER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace httplib {
class Server;
}  // namespace httplib

namespace swarr {

class MetricsExporter {
 public:
  // Workers that answer requests (besides the one thread that accepts connections).
  static constexpr int kWorkerThreads = 4;
  // Seconds a worker waits for a request to start, for each read within it, and for each write
  // of the answer, before it drops the connection.
  static constexpr int kIoTimeoutSeconds = 5;

  // `bind_address`: "host:port" (port 0 = any free one; host "" = all interfaces; IPv6 as
  // "[::1]:9090"), or "" for no endpoint at all. `service` names the service in the log line.
  static std::unique_ptr<MetricsExporter> Start(const std::string& bind_address, const std::string& service);
  ~MetricsExporter();

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }
  // The bound port, 0 when not serving.
  int port() const { return port_; }
  // The text exposition of the registry (what GET /metrics answers).
  std::string Render() const;

 private:
  MetricsExporter();

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<httplib::Server> server_;  // null when not serving
  int port_ = 0;
  std::atomic<bool> listen_returned_{false};
  std::thread thread_;  // runs server_'s accept loop
};

}  // namespace swarr

#endif  // SWARR_COMMON_METRICS_EXPORTER_H_
