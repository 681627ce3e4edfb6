// The supervisor's control socket: a unix stream socket (mode 0600), one JSON request per line,
// one JSON reply per line (control_request.h checks each request before the handler sees it). The handler may answer
// later (e.g. once a rolling restart is done); if the client has gone by then, the reply is dropped.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "supervisor/control_request.h"

namespace rend::supervisor {

class ControlServer {
 public:
  using Reply = std::function<void(const nlohmann::json&)>;
  using Handler = std::function<void(const ControlRequest& request, Reply reply)>;

  ControlServer(uv_loop_t* loop, Handler handler) : loop_(loop), handler_(std::move(handler)) {}
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  Status start(const std::string& path);
  // Serves the listening socket `fd` bound at `path` by the supervisor's previous image (an
  // in-place upgrade).
  Status adopt(const std::string& path, int fd);
  // Serves the client connection `fd` the previous image had a request of: the reply goes there.
  Reply adopt_connection(int fd);
  // The listening socket, for the next image (-1 if not serving).
  int listen_fd() const;
  void stop();

 private:
  struct Connection;
  void on_connection();
  Status listen();
  // Reads the connection's requests and hands each to the handler.
  void serve(std::shared_ptr<Connection> c);

  uv_loop_t* loop_;
  Handler handler_;
  uv_pipe_t* server_ = nullptr;
  std::string path_;
};

}  // namespace rend::supervisor
