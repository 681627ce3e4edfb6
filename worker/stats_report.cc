#include "worker/stats_report.h"

#include <unistd.h>

#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "common/protocol/binary_format.h"
#include "common/shared_stats.h"
#include "common/version.h"
#include "worker/worker.h"

namespace rend::worker {
namespace {

std::vector<std::pair<std::string, std::string>> collect(const Worker& worker) {
  const SharedStats& shared = worker.shared_stats();
  const int64_t now = static_cast<int64_t>(time(nullptr));
  std::vector<std::pair<std::string, std::string>> out = {
      {"pid", std::to_string(getpid())},
      {"uptime", std::to_string(now - shared.block()->supervisor_started_unix)},
      {"time", std::to_string(now)},
      {"version", kVersion},
      {"pointer_size", std::to_string(sizeof(void*) * 8)},
      {"threads", std::to_string(worker.config().workers)},
      {"worker_slot", std::to_string(worker.slot())},
  };
  for (size_t i = 0; i < kCounterCount; ++i) {
    const auto c = static_cast<Counter>(i);
    out.emplace_back(std::string(counter_name(c)), std::to_string(shared.total(c)));
  }
  return out;
}

}  // namespace

void append_text_stats(std::string& out, const Worker& worker) {
  for (const auto& [name, value] : collect(worker)) {
    out.append("STAT ").append(name).append(" ").append(value).append("\r\n");
  }
  out.append("END\r\n");
}

void append_binary_stats(std::string& out, const Worker& worker, uint8_t opcode, uint32_t opaque) {
  namespace bin = proto::bin;
  for (const auto& [name, value] : collect(worker)) {
    bin::append_packet(out, bin::kResponseMagic, opcode, bin::kSuccess, opaque, 0, {}, name, value);
  }
  bin::append_packet(out, bin::kResponseMagic, opcode, bin::kSuccess, opaque, 0, {}, {}, {});
}

}  // namespace rend::worker
