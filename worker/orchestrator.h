// The l1only orchestrator: turns each parsed client request into backend work on L1 memcached
// (or a local reply) and composes memcached's exact reply from the result.
//
// Text commands are translated to the binary protocol towards L1; binary requests are forwarded
// in their loud form (a quiet request still needs an answer to know it finished) and the reply is
// suppressed where memcached's quiet semantics say so. Every key goes to the L1 connection its
// hash picks, so pipelined operations on one key keep their order on the wire.
#pragma once

#include <memory>
#include <string_view>

#include "common/protocol/request.h"

namespace rend::worker {

class BackendConnection;
class Op;
class ClientConnection;
class Worker;

class Orchestrator {
 public:
  explicit Orchestrator(Worker& worker) : worker_(worker) {}
  void dispatch(ClientConnection& conn, const proto::Request& request);

 private:
  void local_reply(ClientConnection& conn, const proto::Request& request);
  void forward(ClientConnection& conn, const proto::Request& request);
  void multi_get(ClientConnection& conn, const proto::Request& request);
  void multi_get_per_key(ClientConnection& conn, const proto::Request& request, size_t count);
  void flush_all(ClientConnection& conn, const proto::Request& request);
  void stats_group(ClientConnection& conn, const proto::Request& request);
  void too_large(ClientConnection& conn, const proto::Request& request);
  void count_request(const proto::Request& request);
  void track(Op& op, const proto::Request& request);

  Worker& worker_;
};

}  // namespace rend::worker
