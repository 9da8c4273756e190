// Tests' HTTP client for /metrics and Prometheus' API: GET over a plain loopback socket.
// Header-only, no dependencies.
#ifndef SWARR_COMMON_TESTING_HTTP_GET_H_
#define SWARR_COMMON_TESTING_HTTP_GET_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace swarr {
namespace testing_http {

// A TCP connection to 127.0.0.1:PORT (the caller closes it); -1 if refused.
inline int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// GET http://127.0.0.1:PORT/PATH (HTTP/1.0): the whole response, head included; "" if the
// connection is refused.
inline std::string GetResponse(int port, const std::string& path) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return "";
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

// The body of GET http://127.0.0.1:PORT/PATH ("" on failure).
inline std::string GetBody(int port, const std::string& path) {
  const std::string out = GetResponse(port, path);
  const size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

}  // namespace testing_http
}  // namespace swarr

#endif  // SWARR_COMMON_TESTING_HTTP_GET_H_
