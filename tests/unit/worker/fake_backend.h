// A scripted stand-in for one of a worker's backend connections, for component tests of the
// worker's logic in process: an in-memory memcached (plus rend-l2's GetE and race flag) that
// answers the binary requests the worker composes, on a later loop turn, as a socket would.
//
// The test scripts it: take it down (requests fail at once, as with a backend waiting to
// reconnect), hold its answers, fail what is outstanding as a timeout or a broken connection
// would (applied or not), override the status of chosen requests, flag writes as raced. Every
// request it received is kept in `seen`, in order, for the test to check what each tier was asked.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "worker/backend.h"

namespace rend::worker::testing {

struct FakeItem {
  std::string value;
  uint32_t flags = 0;
  uint32_t exptime = 0;  // as last given (relative or absolute: the fake does not expire items)
  uint64_t cas = 0;
};

// One request as the backend received it.
struct SeenRequest {
  uint8_t opcode = 0;
  uint8_t data_type = 0;
  uint32_t opaque = 0;
  uint64_t cas = 0;
  std::string extras;
  std::string key;
  std::string value;
  uint32_t flags() const;
  uint32_t exptime() const;  // of a set/add/replace/touch/gat
};

class FakeBackend final : public Backend {
 public:
  FakeBackend(uv_loop_t* loop, std::string name);
  ~FakeBackend() override;

  // ---- Backend -----------------------------------------------------------------------------
  void start() override {}
  void shutdown() override;
  bool accepting() const override { return up_; }
  bool idle() const override { return inbox_.empty(); }
  bool closed() const override { return !up_; }
  void flush() override {}
  void check_deadline(uint64_t) override {}
  void bury(std::string key) override;
  void bury_all() override;
  std::string& out() override { return out_; }
  void expect(std::shared_ptr<Op> op, uint32_t tag, ExpectKind kind, MetricCommand command) override;

  // ---- the script --------------------------------------------------------------------------
  // Down: new requests fail at once with kUnavailable.
  void set_up(bool up) { up_ = up; }
  // Holding: requests are received (and seen) but not answered until release().
  void hold() { held_ = true; }
  void release();
  // What a timeout or a broken connection does: everything outstanding fails with `why`.
  // `applied`: the backend had applied the requests before the answers were lost.
  void fail_outstanding(BackendFailure why, bool applied);
  size_t outstanding() const { return inbox_.size(); }

  // Answers `status` (with memcached's message) instead of what the store would.
  std::function<std::optional<uint16_t>(const SeenRequest&)> status_override;
  // Tracked writes of these keys are answered flagged raced (kDataTypeRacedWrite).
  std::set<std::string> raced_keys;

  std::map<std::string, FakeItem> items;
  std::vector<SeenRequest> seen;
  std::vector<std::string> buried;  // bury() calls, in order
  int bury_all_calls = 0;

  // The requests seen with `opcode` (loud or quiet variant) for `key`.
  std::vector<SeenRequest> seen_for(const std::string& key) const;
  std::string name() const { return name_; }

 private:
  struct Expectation {
    std::shared_ptr<Op> op;
    uint32_t tag;
    ExpectKind kind;
    std::vector<SeenRequest> requests;
  };

  void schedule();
  void deliver_all();
  void answer(const Expectation& e);
  // The response packets of one request, applied to the store (none for a quiet success/miss).
  std::string respond(const SeenRequest& r);
  std::string respond_read(const SeenRequest& r, uint8_t loud);
  std::string respond_store(const SeenRequest& r, uint8_t loud);
  std::string respond_arithmetic(const SeenRequest& r, uint8_t loud);
  void apply(const SeenRequest& r);  // for failures whose request had been applied

  uv_loop_t* loop_;
  std::string name_;
  uv_timer_t timer_;  // answers on the next loop turn (closed with the loop, before this goes)
  bool up_ = true;
  bool held_ = false;
  std::string out_;
  std::deque<Expectation> inbox_;
  uint64_t next_cas_ = 1000;
};

}  // namespace rend::worker::testing
