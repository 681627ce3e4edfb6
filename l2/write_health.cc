#include "l2/write_health.h"

#include <spdlog/spdlog.h>

namespace rend::l2 {

void WriteHealth::OnBackgroundError(rocksdb::BackgroundErrorReason, rocksdb::Status* bg_error) {
  if (bg_error == nullptr || bg_error->ok()) return;  // a listener may have cleared it
  if (failing_.exchange(true, std::memory_order_relaxed)) return;
  failures_.fetch_add(1, std::memory_order_relaxed);
  spdlog::error("L2 writes stopped: {}; reads are still served, writes answer SERVER_ERROR{}", bg_error->ToString(),
                bg_error->IsNoSpace() ? " until the disk has room again" : " until rend-l2 is restarted");
}

void WriteHealth::OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) {
  if (!info.new_bg_error.ok()) return;  // recovery gave up: still failing
  if (failing_.exchange(false, std::memory_order_relaxed)) spdlog::info("L2 writes resumed");
}

}  // namespace rend::l2
