// rend's configuration: one JSON file, every option with a default and a one-line description.
//
// Parsing is strict: an unknown key, a wrong type or an out-of-range value is an error naming the
// key path ("l1.connections: must be between 1 and 64"). The option table in config.cc is the
// single source of truth for defaults, ranges and docs/operations.md's option list (`rend --print-options`).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rend {

struct ListenConfig {
  std::string host;
  int port = 0;
  std::string unix_socket;  // empty: no unix socket listener
  int backlog = 0;
  int batch_port = 0;  // 0: no batch port
};

struct BackendConfig {
  std::string address;  // "unix:/path", a path with a '/', or "host:port"
  int connections = 0;
  int timeout_ms = 0;
  int reconnect_min_ms = 0;
  int reconnect_max_ms = 0;
};

struct WorkerConfig {
  size_t max_item_size = 0;
  size_t output_high_water = 0;
  int max_pending_requests = 0;
  int max_connections = 0;
  int idle_timeout_s = 0;  // 0 = off
  bool key_ordering = true;
};

struct L2Config {
  bool enabled = false;
  bool supervised = false;
  std::string binary;
  std::string data_dir;
  uint64_t max_bytes = 0;
  bool wal = true;
  int block_cache_mb = 0;
  int threads = 0;
  bool backfill_frequency = false;  // l2.backfill_admission "frequency" (worker/backfill_admission.h)
  size_t admission_width = 0;       // counters per row of its sketch
  BackendConfig backend;            // how workers reach rend-l2 (backend.address is its socket)
};

struct MemcachedConfig {
  bool enabled = false;
  std::string binary;
  int memory_mb = 0;
  int threads = 0;
  int max_connections = 0;
  std::vector<std::string> extra_args;
  bool warm_restart = false;
};

struct SupervisorConfig {
  int restart_backoff_min_ms = 0;
  int restart_backoff_max_ms = 0;
  int stop_timeout_ms = 0;
};

struct Config {
  int workers = 0;
  std::string run_dir;
  std::string log_level;
  ListenConfig listen;
  WorkerConfig worker;
  BackendConfig l1;
  bool l1_chunked = false;   // values stored in L1 as equal-size items (worker/chunk_format.h)
  size_t l1_chunk_size = 0;  // the memcached footprint of each of those items, in bytes
  L2Config l2;
  MemcachedConfig memcached;
  SupervisorConfig supervisor;
  bool metrics_enabled = true;
  std::string metrics_listen;
  std::string control_socket;
  nlohmann::json effective;  // the full config with defaults filled in (logged, passed to workers)
};

// Validates `input` against the option table and fills `out`.
Status parse_config(const nlohmann::json& input, Config& out);
Status load_config_file(const std::string& path, Config& out);
// The same from the file's text (JSON, comments allowed).
Status parse_config_text(std::string_view content, Config& out);

// The options whose value differs between `running` and `next` although a reload cannot apply them
// (the option table's restart-only column), as dotted paths.
std::vector<std::string> restart_only_changes(const Config& running, const Config& next);

// Hashes that tell which configuration runs (rendctl status) and whether a new file needs a restart
// (rend --check-config --json): of the whole effective config, and of its restart-only options.
// Both are of the effective JSON, so layout, comments and spelled-out defaults change neither.
std::string config_hash(const Config& config);
std::string restart_hash(const Config& config);

// The option reference as a Markdown table (header included): path, default, whether a reload
// applies it, description. docs/operations.md shows it; config_doc_test keeps the two equal.
std::string describe_options();

}  // namespace rend
