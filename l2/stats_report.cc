#include "l2/stats_report.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ctime>

#include "common/protocol/binary_format.h"
#include "common/version.h"

namespace rend::l2 {

namespace bin = proto::bin;

namespace {

std::string seconds(const timeval& tv) { return fmt::format("{}.{:06}", tv.tv_sec, tv.tv_usec); }

}  // namespace

void general_report(const L2Stats& stats, const Store& store, const EngineInfo& info, Report& out) {
  const int64_t now = static_cast<int64_t>(time(nullptr));
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  out.emplace_back("pid", std::to_string(getpid()));
  out.emplace_back("uptime", std::to_string(now - info.started_unix));
  out.emplace_back("time", std::to_string(now));
  out.emplace_back("version", reported_version());
  out.emplace_back("pointer_size", std::to_string(sizeof(void*) * 8));
  out.emplace_back("rusage_user", seconds(usage.ru_utime));
  out.emplace_back("rusage_system", seconds(usage.ru_stime));
  for (size_t i = 0; i < kL2CounterCount; ++i) {
    const auto c = static_cast<L2Counter>(i);
    out.emplace_back(std::string(l2_counter_name(c)), std::to_string(stats.get(c)));
  }
  out.emplace_back("limit_maxbytes", std::to_string(store.options().max_bytes));
  out.emplace_back("threads", std::to_string(info.threads));
  // RocksDB can only estimate: overwritten and deleted keys count until compaction or eviction.
  out.emplace_back("curr_items", std::to_string(store.estimated_items()));
  store.append_report(out);
}

void settings_report(const Store& store, const EngineInfo& info, Report& out) {
  out.emplace_back("maxbytes", std::to_string(store.options().max_bytes));
  out.emplace_back("tcpport", std::to_string(info.tcp_port));
  out.emplace_back("domain_socket", info.socket_path.empty() ? "NULL" : info.socket_path);
  out.emplace_back("evictions", "on");
  out.emplace_back("num_threads", std::to_string(info.threads));
  out.emplace_back("cas_enabled", "yes");
  out.emplace_back("binding_protocol", "auto-negotiate");
  out.emplace_back("item_size_max", std::to_string(info.max_item_size));
  out.emplace_back("flush_enabled", "yes");
  out.emplace_back("data_dir", store.options().data_dir);
  out.emplace_back("wal", store.options().wal ? "yes" : "no");
  out.emplace_back("block_cache_mb", std::to_string(store.options().block_cache_mb));
  out.emplace_back("race_window_ms", std::to_string(info.race_window_ms));
}

void append_report(std::string& out, const proto::Request& r, const Report& report) {
  if (r.protocol == proto::Protocol::kBinary) {
    for (const auto& [name, value] : report) {
      bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, 0, {}, name, value);
    }
    bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, 0, {}, {}, {});
    return;
  }
  for (const auto& [name, value] : report) out.append("STAT ").append(name).append(" ").append(value).append("\r\n");
  out.append("END\r\n");
}

}  // namespace rend::l2
