#include "worker/dispatcher.h"

#include "common/protocol/command_traits.h"
#include "worker/admin_ops.h"
#include "worker/client_connection.h"
#include "worker/l1only_ops.h"
#include "worker/meta_ops.h"
#include "worker/tier_rules.h"
#include "worker/tiered.h"
#include "worker/worker.h"

namespace rend::worker {

using proto::Command;
using proto::Protocol;
using proto::Request;

void Dispatcher::dispatch(ClientConnection& conn, const Request& r) {
  count_request(r);
  if (r.command == Command::kCas && r.cas == 0 && r.protocol == Protocol::kText) {
    cas_zero(worker_, conn, r);
    return;
  }
  if (dispatch_meta(worker_, conn, r)) return;
  if (has_l2(conn.mode()) && dispatch_tiered(worker_, conn, r, conn.mode())) return;
  const proto::CommandTraits& t = proto::traits(r.command);
  switch (r.command) {
    case Command::kFlushAll: flush_all(worker_, conn, r); return;
    case Command::kTooLarge: too_large(worker_, conn, r); return;
    case Command::kStats: stats(worker_, conn, r); return;
    case Command::kGetE: break;  // needs an L2: answered locally in l1only
    default:
      if (t.multi_key && r.protocol == Protocol::kText) {
        l1only_multi_get(worker_, conn, r);
        return;
      }
      if (t.reads_key || t.writes_key) {
        l1only_forward(worker_, conn, r);
        return;
      }
      break;
  }
  answer_locally(worker_, conn, r);
}

void Dispatcher::count_request(const Request& r) {
  WorkerSlot& s = worker_.stats();
  if (proto::traits(r.command).stores) {
    bump(s, Counter::cmd_set);
    return;
  }
  switch (r.command) {
    case Command::kGet:
    case Command::kGets:
    case Command::kGetE:
      if (r.protocol == Protocol::kBinary) bump(s, Counter::cmd_get);
      break;
    case Command::kGat:
    case Command::kGats:
      if (r.protocol == Protocol::kBinary) {
        bump(s, Counter::cmd_get);
        bump(s, Counter::cmd_touch);
      }
      break;
    case Command::kTouch: bump(s, Counter::cmd_touch); break;
    case Command::kFlushAll: bump(s, Counter::cmd_flush); break;
    case Command::kTooLarge:
      bump(s, Counter::cmd_set);
      bump(s, Counter::store_too_large);
      break;
    case Command::kError:
    case Command::kUnknown: bump(s, Counter::protocol_errors); break;
    default: break;
  }
}

}  // namespace rend::worker
