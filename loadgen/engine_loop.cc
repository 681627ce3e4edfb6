// rend-loadgen engine: the worker's loop over its ring, and its housekeeping.
#include "loadgen/engine_internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/core.h>
#include <liburing.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

#include "common/protocol/binary_format.h"
#include "common/protocol/request_compose.h"
#include "common/protocol/response_parser.h"

namespace rend::loadgen {

using proto::Protocol;
using proto::ResponseParse;
using proto::TextReply;
using proto::TextReplyKind;

// ---- the loop ---------------------------------------------------------------------------------

void Worker::scan_due(int64_t now) {
  earliest_due_ = INT64_MAX;
  for (auto& c : connections_) {
    if (c->finished) continue;
    issue(*c, now);
    check_finished(*c);
  }
}

void Worker::housekeeping(int64_t now) {
  const auto timeout = static_cast<int64_t>(options_.timeout_ms) * 1'000'000;
  for (auto& cp : connections_) {
    Connection& c = *cp;
    if (c.finished) continue;
    switch (c.state) {
      case ConnState::kReady:
        if (!c.inflight.empty() && now - c.inflight.front().sent_ns > timeout) {
          const Pending& p = c.inflight.front();
          fail(c, ErrorKind::kTimeout,
               fmt::format("{} {}: no reply after {} ms", op_name(p.op.kind), key_text(p.op.keys[0]),
                           options_.timeout_ms),
               now);
        }
        break;
      case ConnState::kConnecting:
        if (now - c.connect_started_ns > timeout) connect_failed(c, ETIMEDOUT, now);
        break;
      case ConnState::kBackoff:
        // Not before the old socket's operations have completed: they may still use its buffers.
        if (now >= c.retry_at_ns && !c.busy()) start_connect(c, now);
        break;
      default: break;
    }
  }
}

void Worker::run(const PhasePlan& plan) {
  if (!open_ring()) return;
  // An open loop sleeps until exact send times; the default 50 us timer slack would make every
  // send that late.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  plan_ = &plan;
  open_loop_ = plan.rate > 0;
  stopped_ = false;
  earliest_due_ = INT64_MAX;
  last_reply_ns_ = plan.start_ns;
  stats_.begin_ns = plan.start_ns;
  active_ = connections_.size();
  for (auto& c : connections_) prepare(*c, plan);
  running_ = true;
  for (auto& c : connections_) check_finished(*c);

  timespec start{plan.start_ns / 1'000'000'000, plan.start_ns % 1'000'000'000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &start, nullptr) == EINTR) {
  }
  int64_t now = now_ns();
  for (auto& cp : connections_) {
    Connection& c = *cp;
    if (c.state != ConnState::kReady) continue;
    arm_recv(c);
    issue(c, now);
  }
  next_housekeeping_ = now + kHousekeepingNs;
  while (turn(plan)) {
  }
  running_ = false;
  stats_.end_ns = last_reply_ns_;
  close_ring();
  plan_ = nullptr;
}

void Worker::prepare(Connection& c, const PhasePlan& plan) {
  const uint64_t n = total_connections_;
  c.inflight.reset(plan.pipeline);
  plan.workload->start(c.cursor, c.id, n);
  // --stream moves the choices (keys, commands, sizes) and leaves the values: stream 0 is the
  // seed's own sequence.
  c.rng = Rng(mix64(options_.seed ^ (c.id * 0x100000001b3ULL), (plan.phase + 1) ^ (options_.stream << 32)));
  c.quota = plan.ops == 0 ? UINT64_MAX : plan.ops / n + (c.id < plan.ops % n ? 1 : 0);
  c.exhausted = c.quota == 0;
  c.finished = false;
  c.scheduled = 0;
  if (open_loop_) {
    c.interval_ns = 1e9 * static_cast<double>(n) / plan.rate;
    // Spread the connections' schedules evenly over one interval.
    c.due_base_ns =
        plan.start_ns + static_cast<int64_t>(c.interval_ns * static_cast<double>(c.id) / static_cast<double>(n));
    c.next_due_ns = c.due_base_ns;
    if (plan.end_ns != 0 && c.next_due_ns >= plan.end_ns) c.exhausted = true;
  }
}

bool Worker::turn(const PhasePlan& plan) {
  for (Connection* c : dirty_) {
    c->dirty = false;
    flush(*c);
    check_finished(*c);
  }
  dirty_.clear();
  progress_ops_.store(stats_.ops, std::memory_order_relaxed);
  progress_errors_.store(stats_.errors_total, std::memory_order_relaxed);
  if (active_ == 0) return false;

  int64_t now = now_ns();
  int64_t wake = next_housekeeping_;
  if (plan.end_ns != 0 && !stopped_) wake = std::min(wake, plan.end_ns);
  if (open_loop_) wake = std::min(wake, earliest_due_);
  if (!submit_and_wait(std::max<int64_t>(0, wake - now))) return false;
  // One clock reading for every completion of the turn: they were all reaped just now.
  now = now_ns();
  reap(now);
  if (plan.end_ns != 0 && !stopped_ && now >= plan.end_ns) stop_at_end(plan);
  if (open_loop_ && now >= earliest_due_) scan_due(now);
  if (now >= next_housekeeping_) {
    housekeeping(now);
    next_housekeeping_ = now + kHousekeepingNs;
  }
  return true;
}

void Worker::stop_at_end(const PhasePlan& plan) {
  stopped_ = true;
  for (auto& c : connections_) {
    if (open_loop_ && !c->exhausted) {
      // Requests that were due before the end but never sent: the server (or we) fell behind.
      const double due = std::ceil(static_cast<double>(plan.end_ns - c->due_base_ns) / c->interval_ns);
      const auto due_count = static_cast<uint64_t>(std::max(0.0, due));
      if (due_count > c->scheduled) stats_.unsent += std::min(due_count - c->scheduled, c->quota);
    }
    c->exhausted = true;
    check_finished(*c);
  }
}

}  // namespace rend::loadgen
