// A planned restart of one of the supervised services, memcached (L1) or rend-l2 (L2), that clients
// do not notice: every worker holds its requests to that tier (worker: BackendPool::hold) and says
// so once the tier has answered what it had sent ("l1-held" / "l2-held" on its ready pipe); the
// service then stops gracefully and starts again, and the workers send what they held, in order,
// to the new one.
//
// Why no write is lost or served stale: every worker stops sending to the tier before the service
// stops, and sends what it held only to the new one, in the order it was held.
#pragma once

#include <uv.h>

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "supervisor/child_process.h"
#include "supervisor/service.h"

namespace rend::supervisor {

class HeldRestart {
 public:
  struct Options {
    std::string tier;                                     // "l1" or "l2": the commands' and messages' prefix
    std::string what;                                     // "memcached", "rend-l2": for the log
    std::function<Service*()> service;                    // null when not supervised
    std::function<std::vector<ChildProcess*>()> workers;  // every running worker process
    std::function<uint64_t()> hold_timeout_ms;            // how long to wait for the workers' confirmations
  };

  HeldRestart(uv_loop_t* loop, Options options);
  HeldRestart(const HeldRestart&) = delete;
  HeldRestart& operator=(const HeldRestart&) = delete;

  // Restarts the service; `done` gets the outcome. A request during a restart waits for it.
  void restart(std::function<void(Status)> done);
  // A line from a worker's ready pipe; true if it was this tier's confirmation.
  bool on_message(ChildProcess* worker, std::string_view line);
  // The worker has exited: it holds nothing any more.
  void worker_gone(ChildProcess* worker);
  // A worker that starts during a restart holds its requests too.
  void worker_started(ChildProcess* worker);
  // Ends a restart in progress (rend is stopping): the workers send what they hold.
  void abort(Status why);
  bool restarting() const { return restarting_; }

 private:
  void restart_when_held();
  void finish(Status outcome);
  std::string command(const char* verb) const { return options_.tier + "-" + verb; }

  uv_loop_t* loop_;
  Options options_;
  bool restarting_ = false;
  std::vector<std::function<void(Status)>> waiters_;
  std::vector<ChildProcess*> pending_;  // workers yet to confirm their hold
  uv_timer_t timer_;                    // closed by the loop teardown at exit (close_loop)
};

}  // namespace rend::supervisor
