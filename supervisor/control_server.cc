#include "supervisor/control_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace rend::supervisor {

namespace {
constexpr size_t kMaxRequestLine = 64 * 1024;
}

// Shared by the libuv handle and any pending reply, so a late reply to a closed client is safe.
struct ControlServer::Connection : std::enable_shared_from_this<Connection> {
  uv_pipe_t pipe;
  std::string in;
  bool closed = false;
  std::shared_ptr<Connection> self;  // keeps the object alive until the close callback
  ControlServer* server = nullptr;

  void close() {
    if (closed) return;
    closed = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&pipe), [](uv_handle_t* h) {
      auto* c = static_cast<Connection*>(h->data);
      c->self.reset();
    });
  }

  void send(const nlohmann::json& reply) {
    if (closed) return;
    struct Write {
      uv_write_t req;
      std::string data;
    };
    auto* w = new Write{{}, reply.dump() + "\n"};
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&pipe), &buf, 1,
                 [](uv_write_t* req, int) { delete reinterpret_cast<Write*>(req); }) != 0) {
      delete w;
      close();
    }
  }
};

Status ControlServer::start(const std::string& path) {
  path_ = path;
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    // A socket that still answers belongs to a running rend: never take it over.
    const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    const bool alive = probe >= 0 && connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (probe >= 0) close(probe);
    if (alive) return Status::error(fmt::format("control.socket: {} is in use by a running rend", path));
    unlink(path.c_str());
  }
  server_ = new uv_pipe_t;
  uv_pipe_init(loop_, server_, 0);
  server_->data = this;
  // Only the owner may control rend: create the socket with a 0600 mode from the start.
  const mode_t old_mask = umask(0177);
  const int rc = uv_pipe_bind(server_, path.c_str());
  umask(old_mask);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(server_), [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
    server_ = nullptr;
    return Status::error(fmt::format("control.socket: cannot listen on {}: {}", path, uv_strerror(rc)));
  }
  chmod(path.c_str(), 0600);
  return listen();
}

Status ControlServer::adopt(const std::string& path, int fd) {
  path_ = path;
  server_ = new uv_pipe_t;
  uv_pipe_init(loop_, server_, 0);
  server_->data = this;
  if (const int rc = uv_pipe_open(server_, fd); rc != 0) {
    close(fd);
    uv_close(reinterpret_cast<uv_handle_t*>(server_), [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
    server_ = nullptr;
    return Status::error(fmt::format("control.socket: cannot take over {}: {}", path, uv_strerror(rc)));
  }
  return listen();
}

Status ControlServer::listen() {
  const int rc = uv_listen(reinterpret_cast<uv_stream_t*>(server_), 16, [](uv_stream_t* s, int status) {
    if (status == 0) static_cast<ControlServer*>(s->data)->on_connection();
  });
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(server_), [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
    server_ = nullptr;
    return Status::error(fmt::format("control.socket: cannot listen on {}: {}", path_, uv_strerror(rc)));
  }
  return Status::ok();
}

int ControlServer::listen_fd() const {
  uv_os_fd_t fd = -1;
  if (server_ == nullptr || uv_fileno(reinterpret_cast<const uv_handle_t*>(server_), &fd) != 0) return -1;
  return fd;
}

ControlServer::Reply ControlServer::adopt_connection(int fd) {
  auto c = std::make_shared<Connection>();
  c->self = c;
  c->server = this;
  uv_pipe_init(loop_, &c->pipe, 0);
  c->pipe.data = c.get();
  if (uv_pipe_open(&c->pipe, fd) != 0) {
    close(fd);
    c->close();
    return [](const nlohmann::json&) {};
  }
  serve(c);
  std::weak_ptr<Connection> weak = c;
  return [weak](const nlohmann::json& reply) {
    if (auto conn = weak.lock()) conn->send(reply);
  };
}

void ControlServer::on_connection() {
  auto c = std::make_shared<Connection>();
  c->self = c;
  c->server = this;
  uv_pipe_init(loop_, &c->pipe, 0);
  c->pipe.data = c.get();
  if (uv_accept(reinterpret_cast<uv_stream_t*>(server_), reinterpret_cast<uv_stream_t*>(&c->pipe)) != 0) {
    c->close();
    return;
  }
  serve(std::move(c));
}

void ControlServer::serve(std::shared_ptr<Connection> c) {
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->pipe),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* c = static_cast<Connection*>(s->data);
        std::unique_ptr<char[]> owned(buf->base);
        if (n < 0) {
          c->close();
          return;
        }
        c->in.append(buf->base, static_cast<size_t>(n));
        size_t nl;
        while (!c->closed && (nl = c->in.find('\n')) != std::string::npos) {
          const std::string line = c->in.substr(0, nl);
          c->in.erase(0, nl + 1);
          ControlRequest request;
          if (Status s = parse_control_request(line, request); !s) {
            c->send({{"ok", false}, {"error", s.message()}});
            continue;
          }
          uv_os_fd_t fd = -1;
          if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&c->pipe), &fd) == 0) request.connection_fd = fd;
          std::weak_ptr<Connection> weak = c->shared_from_this();
          c->server->handler_(request, [weak](const nlohmann::json& reply) {
            if (auto conn = weak.lock()) conn->send(reply);
          });
        }
        if (c->in.size() > kMaxRequestLine) {
          c->send({{"ok", false}, {"error", "request line too long"}});
          c->close();
        }
      });
}

void ControlServer::stop() {
  if (server_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(server_), [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
    server_ = nullptr;
    unlink(path_.c_str());
  }
}

}  // namespace rend::supervisor
