#include "supervisor/activated_sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace rend::supervisor {

namespace {

// The port of a listening TCP socket on `host` (or on any address), else 0.
int tcp_port_of(int fd, const std::string& host) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  char text[INET6_ADDRSTRLEN] = {};
  int port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    port = ntohs(in6->sin6_port);
  } else {
    return 0;
  }
  const std::string bound = text;
  const bool any = bound == "0.0.0.0" || bound == "::";
  const bool same = bound == host || (host == "localhost" && (bound == "127.0.0.1" || bound == "::1")) ||
                    (host.empty() && any) || (host == "0.0.0.0" && any) || (host == "::" && any);
  return same ? port : 0;
}

}  // namespace

ActivatedSockets ActivatedSockets::take(const std::string& host, int port, int batch_port, const std::string& unix_path,
                                        const std::function<bool(const std::string& name, int fd)>& other) {
  ActivatedSockets out;
  char** names = nullptr;
  const int n = sd_listen_fds_with_names(1, &names);
  if (n <= 0) return out;
  size_t others = 0;
  for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; ++fd) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    const std::string name =
        names != nullptr && names[fd - SD_LISTEN_FDS_START] != nullptr ? names[fd - SD_LISTEN_FDS_START] : "";
    const int tcp_port = tcp_port_of(fd, host);
    if (tcp_port != 0 && tcp_port == port && out.main_fd < 0) {
      out.main_fd = fd;
    } else if (tcp_port != 0 && tcp_port == batch_port && out.batch_fd < 0) {
      out.batch_fd = fd;
    } else if (!unix_path.empty() && out.unix_fd < 0 &&
               sd_is_socket_unix(fd, SOCK_STREAM, 1, unix_path.c_str(), 0) > 0) {
      out.unix_fd = fd;
    } else if (other(name, fd)) {
      ++others;
    } else {
      spdlog::warn("systemd passed a socket (fd {}) that matches no listener of the configuration; closing it", fd);
      close(fd);
    }
  }
  if (names != nullptr) {
    for (int i = 0; i < n; ++i) free(names[i]);
    free(names);
  }
  if (out.any()) {
    spdlog::info("socket activation: systemd holds{}{}{}", out.main_fd >= 0 ? " the main port" : "",
                 out.batch_fd >= 0 ? " the batch port" : "", out.unix_fd >= 0 ? " the unix socket" : "");
  }
  if (others > 0) spdlog::info("systemd passed back {} descriptors rend stored at its last stop", others);
  return out;
}

}  // namespace rend::supervisor
