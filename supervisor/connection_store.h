// Client connections kept open across a stop and start of rend under systemd (`systemctl restart
// rend`), in systemd's file descriptor store (FDSTORE=1; FileDescriptorStoreMax= in rend.service).
//
// At a stop, each worker hands its connections to the supervisor at their request boundaries, as
// it would to a successor (the same messages: worker/connection_handoff.h), instead of closing
// them. Once every worker has gone, the supervisor stores the messages, which carry what each
// worker had read but not parsed, in a memfd ("rend-handoff-B", B naming this stop's batch), and
// each socket under a name of its own ("rend-client-B-N"). The next rend gets them back with its
// listening sockets (LISTEN_FDS, LISTEN_FDNAMES), replays each connection's messages to one of its
// workers as a departing worker would, and removes them from the store. A connection whose socket
// did not come back (the client hung up, or the store was full) is left out.
//
// systemd keeps the store while a restart is queued; after a plain stop it closes them, and the
// clients see their connections closed, as they would have without the store.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rend::supervisor {

class ConnectionStore {
 public:
  explicit ConnectionStore(uv_loop_t* loop);
  ConnectionStore(const ConnectionStore&) = delete;
  ConnectionStore& operator=(const ConnectionStore&) = delete;
  ~ConnectionStore();

  // ---- stop side
  // Reads one worker's handed connections from `channel_fd` (owned from now on) until the worker
  // closes its end; `on_end` runs then.
  void collect_from(int channel_fd, std::function<void()> on_end);
  // A worker's channel is still open.
  bool collecting() const;
  // Puts every collected connection in systemd's store; returns how many. The supervisor's copies
  // are closed (systemd holds its own).
  size_t store();

  // ---- start side
  // Takes a descriptor systemd passed back under `name`; false if the name is not the store's.
  bool take(const std::string& name, int fd);
  // How many connections came back.
  size_t stored() const;
  // Sends the connections that came back to workers: `channel_for` gives, for each connection in
  // turn, the supervisor's end of a handoff channel to a worker (-1: none left), in rotation; one
  // that fails is not used again. Removes them from systemd's store. Returns how many went.
  size_t replay(const std::function<int()>& channel_for);

 private:
  // One connection as a worker handed it over: its socket and its messages, complete.
  struct Connection {
    int fd = -1;
    std::vector<std::string> messages;
  };
  struct Channel;
  void on_readable(Channel& c);

  uv_loop_t* loop_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<Connection> collected_;                // complete connections, from every worker
  std::vector<std::pair<std::string, int>> passed_;  // from systemd: rend-client-* and rend-handoff-*
};

}  // namespace rend::supervisor
