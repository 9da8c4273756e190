#include "common/metrics/exporter.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <sstream>

#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace swarr {
namespace {

// Sends all of `data`; false if the peer went away.
bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Binds "host:port" (IPv4 or IPv6; "" host = all interfaces). Returns the fd or -1 with `error`.
int Listen(const std::string& address, std::string* error) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    *error = "expected host:port";
    return -1;
  }
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    *error = gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0) break;
    *error = std::strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

}  // namespace

std::unique_ptr<MetricsExporter> MetricsExporter::Start(const std::string& bind_address, const std::string& service) {
  std::unique_ptr<MetricsExporter> e(new MetricsExporter());
  e->registry_ = std::make_shared<prometheus::Registry>();
  if (bind_address.empty()) return e;
  std::string error;
  e->listen_fd_ = Listen(bind_address, &error);
  if (e->listen_fd_ < 0) {
    std::cerr << service << ": metrics exporter cannot listen on " << bind_address << " (" << error
              << "); running without /metrics\n";
    return e;
  }
  e->port_ = BoundPort(e->listen_fd_);
  e->thread_ = std::thread([p = e.get()] { p->Serve(); });
  return e;
}

MetricsExporter::~MetricsExporter() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
}

std::string MetricsExporter::Render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

void MetricsExporter::Serve() {
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Answer(fd);
    close(fd);
  }
}

void MetricsExporter::Answer(int fd) const {
  // Read the request head (bounded size and time: a slow or hostile client cannot hold us).
  std::string request;
  char buf[1024];
  while (request.find("\r\n\r\n") == std::string::npos && request.find("\n\n") == std::string::npos &&
         request.size() < 8192) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0) return;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  const size_t line_end = request.find_first_of("\r\n");
  const std::string line = request.substr(0, line_end);
  const bool get = line.rfind("GET ", 0) == 0;
  const size_t path_end = line.find(' ', 4);
  const std::string path = get ? line.substr(4, path_end == std::string::npos ? std::string::npos : path_end - 4) : "";
  std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
  if (!get) {
    status = "405 Method Not Allowed";
    body = "only GET\n";
  } else if (path == "/metrics" || path.rfind("/metrics?", 0) == 0) {
    body = Render();
  } else {
    status = "404 Not Found";
    body = "see /metrics\n";
  }
  const std::string head = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (SendAll(fd, head)) SendAll(fd, body);
}

}  // namespace swarr
