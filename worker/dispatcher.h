// The dispatcher: every parsed client request goes to the code that serves it in the connection's
// mode. The tiered modes' key commands go through the tier rules (tiered.h); l1only's to
// l1only_ops.h; what is the same in every mode (flush_all, stats, errors, ...) to admin_ops.h.
// It also counts the request in the worker's stats.
#pragma once

#include "common/protocol/request.h"

namespace rend::worker {

class ClientConnection;
class Worker;

class Dispatcher {
 public:
  explicit Dispatcher(Worker& worker) : worker_(worker) {}
  void dispatch(ClientConnection& conn, const proto::Request& request);

 private:
  void count_request(const proto::Request& request);

  Worker& worker_;
};

}  // namespace rend::worker
