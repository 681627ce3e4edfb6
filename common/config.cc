#include "common/config.h"

#include <climits>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <xxhash.h>

namespace rend {
namespace {

using nlohmann::json;

struct Option {
  const char* path;  // dotted
  json default_value;
  const char* description;
  int64_t min = 0;
  int64_t max = 0;  // numbers only; min == max == 0 means unchecked
  // A reload cannot apply it: it names the listening sockets, whether memcached is supervised and
  // where L1 is (a reload applies memcached's other settings with a warm restart of memcached, which
  // keeps its items where it can; see Supervisor::restart_memcached), how values are
  // laid out in L1 (chunked or not, the chunk size: items written one way misread the other),
  // rend-l2's identity, or where the supervisor itself is reached. Changing it needs a restart of
  // rend; a reload that tries is refused with the key's name.
  bool restart_only = false;
};

constexpr bool kRestartOnly = true;

const std::vector<Option>& options() {
  static const std::vector<Option> table = {
      {"workers", 0, "worker processes; 0 = one per CPU core", 0, 64},
      {"run_dir", "run", "directory for sockets and pid files (relative paths are from the start directory)", 0, 0,
       kRestartOnly},
      {"log_level", "info", "trace, debug, info, warn, error or critical"},
      {"listen.host", "127.0.0.1", "address the memcached port listens on", 0, 0, kRestartOnly},
      {"listen.port", 11211, "memcached port (text and binary, auto-detected)", 1, 65535, kRestartOnly},
      {"listen.unix_socket", "", "also listen on this unix socket path (empty = off)", 0, 0, kRestartOnly},
      {"listen.batch_port", 11212, "batch port (l1l2batch mode) when L2 is enabled; 0 = off", 0, 65535, kRestartOnly},
      {"listen.backlog", 1024, "listen backlog of each socket", 1, 65535, kRestartOnly},
      {"worker.max_item_size", 1048576,
       "largest item accepted, in bytes, as memcached -I counts it (a 56-byte header, the key, "
       "the flags, the value and its CRLF); larger ones are refused with memcached's "
       "'object too large' error",
       1, 1073741824, kRestartOnly},
      {"worker.output_high_water", 4194304,
       "unsent reply bytes per client at which rend stops reading "
       "from it until it drains",
       65536, 1073741824},
      {"worker.max_pending_requests", 4096,
       "requests in flight per client at which rend stops reading "
       "from it",
       1, 1048576},
      {"worker.max_connections", 10000, "client connections per worker; further ones are closed at once", 1, 1000000},
      {"worker.idle_timeout_s", 0,
       "close a client connection that has sent nothing and has nothing in flight for this long, in seconds "
       "(memcached's idle_timeout); 0 = never",
       0, 86400 * 365},
      {"worker.key_ordering", true,
       "a multi-step (L2 then L1) operation on a key finishes before the next "
       "one on that key starts, within a worker"},
      {"l1.address", "run/memcached.sock", "L1 memcached: a unix socket path or host:port", 0, 0, kRestartOnly},
      {"l1.connections", 2, "connections from each worker to L1, chosen by key hash (l1only: twice, for meta commands)",
       1, 64},
      {"l1.timeout_ms", 1000,
       "a request L1 has not answered in this time fails with SERVER_ERROR and the "
       "connection is re-established",
       1, 600000},
      {"l1.reconnect_min_ms", 10, "first reconnect delay after L1 fails; doubles per failure", 1, 60000},
      {"l1.reconnect_max_ms", 1000, "cap of the reconnect delay", 1, 600000},
      {"l1.chunked", false,
       "store every value in L1 as equal-size items (a head plus chunks), so memcached's "
       "slab classes cannot strand memory when value sizes shift; allows values over 1 MiB",
       0, 0, kRestartOnly},
      {"l1.chunk_size", 1184,
       "chunked L1: the memory each L1 item takes in memcached, in bytes; pick one of "
       "memcached's slab class sizes ('stats slabs' chunk_size)",
       384, 524288, kRestartOnly},
      {"l2.enabled", false, "use the L2 tier (rend-l2, RocksDB on SSD): main port l1l2, batch port l1l2batch", 0, 0,
       kRestartOnly},
      {"l2.address", "run/rend-l2.sock", "rend-l2's unix socket path (or host:port when not supervised)", 0, 0,
       kRestartOnly},
      {"l2.supervised", true, "start and supervise rend-l2 on l2.address", 0, 0, kRestartOnly},
      {"l2.binary", "", "rend-l2 executable (empty = next to rend)"},
      {"l2.data_dir", "data/l2", "RocksDB directory of rend-l2", 0, 0, kRestartOnly},
      {"l2.max_bytes", 10737418240, "disk budget of rend-l2's data; past it the oldest data is evicted", 16777216,
       INT64_MAX},
      {"l2.wal", true, "write-ahead log: every acknowledged write survives a crash of rend-l2"},
      {"l2.block_cache_mb", 256, "RocksDB block cache of rend-l2, in MiB", 1, 1048576},
      {"l2.threads", 2, "rend-l2 threads executing requests off its event loop", 1, 64},
      {"l2.connections", 2, "connections from each worker to L2, chosen by key hash", 1, 64},
      {"l2.timeout_ms", 2000, "a request L2 has not answered in this time fails with SERVER_ERROR", 1, 600000},
      {"l2.reconnect_min_ms", 10, "first reconnect delay after L2 fails; doubles per failure", 1, 60000},
      {"l2.reconnect_max_ms", 1000, "cap of the reconnect delay", 1, 600000},
      {"l2.backfill_admission", "all",
       "which L2 hits that missed L1 are copied into L1: all, or frequency (only keys that missed L1 "
       "twice lately, or while L1 has not evicted for 30 s), so one-off reads do not push out keys "
       "read again when L1 is much smaller than the working set"},
      {"l2.admission_width", 1048576,
       "frequency admission: counters per row of each worker's sketch, about the items L1 holds "
       "(rounded up to a power of two; 8 bytes each); the sketch forgets every 10x this many L1 misses",
       64, 67108864},
      {"memcached.enabled", true, "start and supervise memcached on l1.address (a unix socket path)", 0, 0,
       kRestartOnly},
      {"memcached.binary", "memcached", "memcached executable (looked up on PATH)"},
      {"memcached.memory_mb", 1024, "memcached -m: cache memory in MiB (a change empties L1)", 8, 1048576},
      {"memcached.threads", 4, "memcached -t: worker threads", 1, 256},
      {"memcached.max_connections", 4096, "memcached -c: connection limit", 16, 1000000},
      {"memcached.extra_args", json::array(), "further memcached arguments, e.g. [\"-o\", \"modern\"]"},
      {"memcached.warm_restart", true,
       "keep L1's items across planned restarts of memcached (memcached -e with a memory file in run_dir, "
       "stopped with SIGUSR1); used only when run_dir is on a RAM filesystem with room for memory_mb"},
      {"metrics.enabled", true, "record per-request counters by result and latency histograms"},
      {"metrics.listen", "127.0.0.1:11299", "address of the Prometheus /metrics endpoint (empty = off)", 0, 0,
       kRestartOnly},
      {"control.socket", "run/rend.ctl", "rendctl's unix socket (mode 0600)", 0, 0, kRestartOnly},
      {"supervisor.restart_backoff_min_ms", 50,
       "delay before restarting a child that died; doubles per "
       "crash in a row",
       0, 60000},
      {"supervisor.restart_backoff_max_ms", 5000, "cap of the restart delay", 1, 600000},
      {"supervisor.stop_timeout_ms", 10000,
       "graceful stop: time a child gets to finish in-flight "
       "requests before SIGKILL",
       100, 600000},
  };
  return table;
}

std::string type_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array of strings";
  return "an object";
}

bool same_type(const json& want, const json& got) {
  if (want.is_boolean()) return got.is_boolean();
  if (want.is_number_integer()) return got.is_number_integer();
  if (want.is_string()) return got.is_string();
  if (want.is_array()) {
    if (!got.is_array()) return false;
    for (const auto& e : got) {
      if (!e.is_string()) return false;
    }
    return true;
  }
  return false;
}

std::string to_pointer(std::string_view dotted) {
  std::string ptr = "/";
  for (char c : dotted) ptr += (c == '.') ? '/' : c;
  return ptr;
}

const Option* find_option(const std::string& path) {
  for (const auto& o : options()) {
    if (path == o.path) return &o;
  }
  return nullptr;
}

bool is_section(const std::string& path) {
  const std::string prefix = path + ".";
  for (const auto& o : options()) {
    if (std::string_view(o.path).starts_with(prefix)) return true;
  }
  return false;
}

// Walks the user's JSON, checking every key against the table, and writes values into `effective`.
Status merge(const json& node, const std::string& prefix, json& effective) {
  if (!node.is_object()) {
    return Status::error(fmt::format("{}: must be an object", prefix.empty() ? "(top level)" : prefix));
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (const Option* o = find_option(path)) {
      if (!same_type(o->default_value, it.value())) {
        return Status::error(fmt::format("{}: must be {}", path, type_name(o->default_value)));
      }
      if (o->default_value.is_number_integer() && (o->min != 0 || o->max != 0)) {
        const int64_t v = it.value().get<int64_t>();
        if (v < o->min || v > o->max) {
          return Status::error(fmt::format("{}: must be between {} and {} (got {})", path, o->min, o->max, v));
        }
      }
      effective[json::json_pointer(to_pointer(path))] = it.value();
    } else if (is_section(path)) {
      if (Status s = merge(it.value(), path, effective); !s) return s;
    } else {
      return Status::error(fmt::format("{}: unknown option", path));
    }
  }
  return Status::ok();
}

json defaults() {
  json out = json::object();
  for (const auto& o : options()) out[json::json_pointer(to_pointer(o.path))] = o.default_value;
  return out;
}

// The l2 section (what rend-l2 is given, and how workers reach it and use it).
Status parse_l2(const json& l2, L2Config& out) {
  out.enabled = l2["enabled"].get<bool>();
  out.supervised = l2["supervised"].get<bool>();
  out.binary = l2["binary"].get<std::string>();
  out.data_dir = l2["data_dir"].get<std::string>();
  out.max_bytes = l2["max_bytes"].get<uint64_t>();
  out.wal = l2["wal"].get<bool>();
  out.block_cache_mb = l2["block_cache_mb"].get<int>();
  out.threads = l2["threads"].get<int>();
  const std::string admission = l2["backfill_admission"].get<std::string>();
  if (admission != "all" && admission != "frequency") {
    return Status::error("l2.backfill_admission: must be all or frequency");
  }
  out.backfill_frequency = admission == "frequency";
  out.admission_width = l2["admission_width"].get<size_t>();
  out.backend.address = l2["address"].get<std::string>();
  out.backend.connections = l2["connections"].get<int>();
  out.backend.timeout_ms = l2["timeout_ms"].get<int>();
  out.backend.reconnect_min_ms = l2["reconnect_min_ms"].get<int>();
  out.backend.reconnect_max_ms = l2["reconnect_max_ms"].get<int>();
  if (out.backend.reconnect_max_ms < out.backend.reconnect_min_ms) {
    return Status::error("l2.reconnect_max_ms: must be at least l2.reconnect_min_ms");
  }
  if (out.supervised && out.backend.address.find('/') == std::string::npos &&
      !out.backend.address.starts_with("unix:")) {
    return Status::error("l2.address: must be a unix socket path when l2.supervised is true");
  }
  return Status::ok();
}

}  // namespace

Status parse_config(const json& input, Config& out) {
  json effective = defaults();
  if (Status s = merge(input, "", effective); !s) return s;

  const json& e = effective;
  Config c;
  c.workers = e["workers"].get<int>();
  if (c.workers == 0) c.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  c.run_dir = e["run_dir"].get<std::string>();
  c.log_level = e["log_level"].get<std::string>();
  static const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(levels.begin(), levels.end(), c.log_level) == levels.end()) {
    return Status::error("log_level: must be one of trace, debug, info, warn, error, critical, off");
  }
  c.listen.host = e["listen"]["host"].get<std::string>();
  c.listen.port = e["listen"]["port"].get<int>();
  c.listen.unix_socket = e["listen"]["unix_socket"].get<std::string>();
  c.listen.backlog = e["listen"]["backlog"].get<int>();
  c.listen.batch_port = e["listen"]["batch_port"].get<int>();
  if (c.listen.batch_port == c.listen.port) return Status::error("listen.batch_port: must differ from listen.port");
  c.worker.max_item_size = e["worker"]["max_item_size"].get<size_t>();
  c.worker.output_high_water = e["worker"]["output_high_water"].get<size_t>();
  c.worker.max_pending_requests = e["worker"]["max_pending_requests"].get<int>();
  c.worker.max_connections = e["worker"]["max_connections"].get<int>();
  c.worker.idle_timeout_s = e["worker"]["idle_timeout_s"].get<int>();
  c.worker.key_ordering = e["worker"]["key_ordering"].get<bool>();
  c.l1.address = e["l1"]["address"].get<std::string>();
  c.l1.connections = e["l1"]["connections"].get<int>();
  c.l1.timeout_ms = e["l1"]["timeout_ms"].get<int>();
  c.l1.reconnect_min_ms = e["l1"]["reconnect_min_ms"].get<int>();
  c.l1.reconnect_max_ms = e["l1"]["reconnect_max_ms"].get<int>();
  c.l1_chunked = e["l1"]["chunked"].get<bool>();
  c.l1_chunk_size = e["l1"]["chunk_size"].get<size_t>();
  if (c.l1.address.empty()) return Status::error("l1.address: must not be empty");
  if (c.l1.reconnect_max_ms < c.l1.reconnect_min_ms) {
    return Status::error("l1.reconnect_max_ms: must be at least l1.reconnect_min_ms");
  }
  if (Status s = parse_l2(e["l2"], c.l2); !s) return s;
  c.memcached.enabled = e["memcached"]["enabled"].get<bool>();
  c.memcached.binary = e["memcached"]["binary"].get<std::string>();
  c.memcached.memory_mb = e["memcached"]["memory_mb"].get<int>();
  c.memcached.threads = e["memcached"]["threads"].get<int>();
  c.memcached.max_connections = e["memcached"]["max_connections"].get<int>();
  c.memcached.extra_args = e["memcached"]["extra_args"].get<std::vector<std::string>>();
  c.memcached.warm_restart = e["memcached"]["warm_restart"].get<bool>();
  if (c.memcached.enabled && c.l1.address.find('/') == std::string::npos && !c.l1.address.starts_with("unix:")) {
    return Status::error("l1.address: must be a unix socket path when memcached.enabled is true");
  }
  c.metrics_enabled = e["metrics"]["enabled"].get<bool>();
  c.metrics_listen = e["metrics"]["listen"].get<std::string>();
  c.control_socket = e["control"]["socket"].get<std::string>();
  if (c.control_socket.empty()) return Status::error("control.socket: must not be empty");
  c.supervisor.restart_backoff_min_ms = e["supervisor"]["restart_backoff_min_ms"].get<int>();
  c.supervisor.restart_backoff_max_ms = e["supervisor"]["restart_backoff_max_ms"].get<int>();
  c.supervisor.stop_timeout_ms = e["supervisor"]["stop_timeout_ms"].get<int>();
  c.effective = std::move(effective);
  out = std::move(c);
  return Status::ok();
}

Status load_config_file(const std::string& path, Config& out) {
  std::ifstream in(path);
  if (!in) return Status::error(fmt::format("{}: cannot open", path));
  const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (Status s = parse_config_text(content, out); !s) return Status::error(fmt::format("{}: {}", path, s.message()));
  return Status::ok();
}

Status parse_config_text(std::string_view content, Config& out) {
  json parsed;
  try {
    parsed = json::parse(content, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    return Status::error(fmt::format("invalid JSON: {}", e.what()));
  }
  return parse_config(parsed, out);
}

std::vector<std::string> restart_only_changes(const Config& running, const Config& next) {
  std::vector<std::string> changed;
  for (const auto& o : options()) {
    const json::json_pointer at(to_pointer(o.path));
    if (o.restart_only && running.effective.value(at, json()) != next.effective.value(at, json())) {
      changed.emplace_back(o.path);
    }
  }
  return changed;
}

namespace {
std::string hash_of(const json& value) {
  const std::string text = value.dump();  // objects keep their keys sorted: one text per value
  return fmt::format("{:016x}", XXH3_64bits(text.data(), text.size()));
}
}  // namespace

std::string config_hash(const Config& config) { return hash_of(config.effective); }

std::string restart_hash(const Config& config) {
  json restart_only = json::object();
  for (const auto& o : options()) {
    if (o.restart_only) restart_only[o.path] = config.effective.value(json::json_pointer(to_pointer(o.path)), json());
  }
  return hash_of(restart_only);
}

std::string describe_options() {
  std::ostringstream out;
  out << "| option | default | on reload | meaning |\n|---|---|---|---|\n";
  for (const auto& o : options()) {
    out << "| `" << o.path << "` | `" << o.default_value.dump() << "` | " << (o.restart_only ? "restart" : "applied")
        << " | " << o.description;
    if (o.max == INT64_MAX) {
      out << " (at least " << o.min << ")";
    } else if (o.min != 0 || o.max != 0) {
      out << " (" << o.min << "–" << o.max << ")";
    }
    out << " |\n";
  }
  return out.str();
}

}  // namespace rend
