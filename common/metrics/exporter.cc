#include "common/metrics/exporter.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <sstream>

#include <httplib.h>

#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace swarr {
namespace {

constexpr char kExpositionType[] = "text/plain; version=0.0.4; charset=utf-8";

// Splits "host:port" / "[v6]:port"; false if there is no numeric port.
bool SplitHostPort(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) return false;
  const std::string port_text = address.substr(colon + 1);
  if (port_text.find_first_not_of("0123456789") != std::string::npos || port_text.size() > 5) return false;
  *port = std::stoi(port_text);
  if (*port > 65535) return false;
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  return true;
}

// SO_REUSEADDR only: cpp-httplib's default sets SO_REUSEPORT, with which a second exporter
// would silently share a busy port instead of failing to bind.
void SocketOptions(int fd) {
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
}

}  // namespace

MetricsExporter::MetricsExporter() : registry_(std::make_shared<prometheus::Registry>()) {}

std::unique_ptr<MetricsExporter> MetricsExporter::Start(const std::string& bind_address, const std::string& service) {
  std::unique_ptr<MetricsExporter> e(new MetricsExporter());
  if (bind_address.empty()) return e;
  std::string host;
  int port = 0;
  if (!SplitHostPort(bind_address, &host, &port)) {
    std::cerr << service << ": metrics exporter cannot listen on " << bind_address
              << " (expected host:port); running without /metrics\n";
    return e;
  }
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  server->set_socket_options(SocketOptions);
  server->set_keep_alive_max_count(1);  // one request per connection
  server->set_keep_alive_timeout(kIoTimeoutSeconds);  // wait for the request to start
  server->set_read_timeout(kIoTimeoutSeconds, 0);
  server->set_write_timeout(kIoTimeoutSeconds, 0);
  server->set_payload_max_length(64 * 1024);
  MetricsExporter* self = e.get();
  server->Get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    res.set_content(self->Render(), kExpositionType);
  });
  server->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) res.set_content("see /metrics\n", "text/plain; charset=utf-8");
  });
  // AI_PASSIVE: host "" binds all interfaces (without it getaddrinfo gives loopback).
  const int flags = AI_PASSIVE | AI_NUMERICSERV;
  errno = 0;
  const int bound = port == 0 ? server->bind_to_any_port(host, flags)
                              : (server->bind_to_port(host, port, flags) ? port : -1);
  if (bound <= 0) {
    std::cerr << service << ": metrics exporter cannot listen on " << bind_address << " ("
              << (errno != 0 ? std::strerror(errno) : "cannot resolve the address") << "); running without /metrics\n";
    return e;
  }
  e->port_ = bound;
  e->server_ = std::move(server);
  e->thread_ = std::thread([self] {
    self->server_->listen_after_bind();
    self->listen_returned_.store(true);
  });
  return e;
}

MetricsExporter::~MetricsExporter() {
  if (thread_.joinable()) {
    // stop() is a no-op until the accept loop has started; wait for it (or for its end).
    while (!server_->is_running() && !listen_returned_.load()) std::this_thread::yield();
    server_->stop();
    thread_.join();
  }
}

std::string MetricsExporter::Render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace swarr
