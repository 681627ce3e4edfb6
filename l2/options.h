// rend-l2's settings: the `l2` section of rend's config (plus the worker limits it shares with
// rend-worker), overridden by command-line flags for standalone use and tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/config.h"
#include "common/status.h"
#include "l2/store.h"

namespace rend::l2 {

// What the event loop may execute itself when it needs no I/O and no waiting (engine.h): nothing
// (every request goes to a worker thread), reads, or reads and small writes.
enum class InlineMode : uint8_t { kOff, kReads, kAll };

struct L2Options {
  std::string log_level = "info";
  std::string socket_path;  // unix listener; empty = none
  std::string tcp_host;     // TCP listener (l2.address given as host:port, or --port)
  int tcp_port = 0;         // 0 = no TCP listener
  int backlog = 1024;
  StoreOptions store;
  int threads = 0;
  size_t max_item_size = 0;
  size_t output_high_water = 0;
  int64_t race_window_ms = 0;        // tier_race_window_ms() of the config (common/race_window.h)
  int64_t race_start_window_ms = 0;  // l1.timeout_ms + 1 s: see WriteHistory
  InlineMode inline_mode = InlineMode::kAll;
  int ready_fd = -1;
};

struct Overrides {
  std::optional<std::string> socket_path;
  std::optional<std::string> data_dir;
  std::optional<uint64_t> max_bytes;
  std::optional<int> port;
  std::optional<int> threads;
  std::optional<std::string> inline_mode;  // "off", "reads" or "all"
};

// Splits l2.address: "unix:/p" or anything with a '/' is a unix socket path, "host:port" is TCP.
// Returns false when it is neither.
bool parse_address(const std::string& address, std::string& path, std::string& host, int& port);

Status resolve_options(const Config& config, const Overrides& overrides, L2Options& out);

}  // namespace rend::l2
