// The `stats` reports of rend-l2: memcached's general counters in memcached's order, then
// rend-l2's own and RocksDB's figures; and `stats settings`. Built on a worker thread (reading
// RocksDB properties and the data directory's size may touch the disk).
#pragma once

#include <string>

#include "l2/engine.h"
#include "l2/l2_stats.h"
#include "l2/store.h"

namespace rend::l2 {

void general_report(const L2Stats& stats, const Store& store, const EngineInfo& info, Report& out);
void settings_report(const Store& store, const EngineInfo& info, Report& out);

// Text "STAT name value" lines and END, or binary STAT packets and the empty terminator.
void append_report(std::string& out, const proto::Request& r, const Report& report);

}  // namespace rend::l2
