#include "l2/options.h"

#include <charconv>

#include "common/race_window.h"

namespace rend::l2 {

bool parse_address(const std::string& address, std::string& path, std::string& host, int& port) {
  path.clear();
  host.clear();
  port = 0;
  if (address.starts_with("unix:")) {
    path = address.substr(5);
    return !path.empty();
  }
  if (address.find('/') != std::string::npos) {
    path = address;
    return true;
  }
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    path = address;  // a bare file name: a socket in the current directory
    return !path.empty();
  }
  const char* first = address.data() + colon + 1;
  const char* last = address.data() + address.size();
  auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || end != last || port < 1 || port > 65535) return false;
  host = address.substr(0, colon);
  return true;
}

Status resolve_options(const Config& config, const Overrides& o, L2Options& out) {
  out.log_level = config.log_level;
  out.backlog = config.listen.backlog;
  out.max_item_size = config.worker.max_item_size;
  out.output_high_water = config.worker.output_high_water;
  out.race_window_ms = tier_race_window_ms(config);
  out.race_start_window_ms = int64_t{config.l1.timeout_ms} + 1000;
  out.threads = o.threads.value_or(config.l2.threads);
  out.store.data_dir = o.data_dir.value_or(config.l2.data_dir);
  out.store.max_bytes = o.max_bytes.value_or(config.l2.max_bytes);
  out.store.wal = config.l2.wal;
  out.store.block_cache_mb = config.l2.block_cache_mb;
  if (o.socket_path) {
    out.socket_path = *o.socket_path;
  } else if (!parse_address(config.l2.backend.address, out.socket_path, out.tcp_host, out.tcp_port)) {
    return Status::error("l2.address: neither a unix socket path nor host:port: " + config.l2.backend.address);
  }
  if (o.port) {
    out.tcp_host = "127.0.0.1";
    out.tcp_port = *o.port;
  }
  if (out.socket_path.empty() && out.tcp_port == 0) return Status::error("nothing to listen on");
  if (out.store.data_dir.empty()) return Status::error("l2.data_dir: must not be empty");
  if (out.store.max_bytes < (16u << 20)) return Status::error("--max-bytes: must be at least 16 MiB");
  if (out.threads < 1 || out.threads > 64) return Status::error("--threads: must be between 1 and 64");
  if (o.inline_mode) {
    if (*o.inline_mode == "off") {
      out.inline_mode = InlineMode::kOff;
    } else if (*o.inline_mode == "reads") {
      out.inline_mode = InlineMode::kReads;
    } else if (*o.inline_mode == "all") {
      out.inline_mode = InlineMode::kAll;
    } else {
      return Status::error("--inline: must be off, reads or all");
    }
  }
  return Status::ok();
}

}  // namespace rend::l2
