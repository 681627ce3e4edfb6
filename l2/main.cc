// rend-l2: the L2 cache service (RocksDB on SSD) behind rend's workers, or a persistent
// memcached-compatible server on its own. The supervisor starts it with --config and --stats-fd
// (and deems it ready once its socket accepts); by hand, --ready-fd and the overrides help.
#include <CLI/CLI.hpp>
#include <csignal>

#include "common/config.h"
#include "common/exit_codes.h"
#include "common/logging.h"
#include "common/shared_stats.h"
#include "l2/options.h"
#include "l2/server.h"
#include "l2/store.h"

int main(int argc, char** argv) {
  CLI::App app{"rend-l2: RocksDB-backed memcached-compatible cache (rend's L2)"};
  std::string config_path;
  rend::l2::Overrides overrides;
  int ready_fd = -1;
  int stats_fd = -1;
  app.add_option("--config", config_path, "rend's JSON config file (its l2 section); defaults when omitted");
  app.add_option("--socket", overrides.socket_path, "unix socket to listen on (overrides l2.address)");
  app.add_option("--data-dir", overrides.data_dir, "RocksDB directory (overrides l2.data_dir)");
  app.add_option("--max-bytes", overrides.max_bytes, "disk budget in bytes (overrides l2.max_bytes)");
  app.add_option("--port", overrides.port, "also listen on 127.0.0.1:PORT (TCP, for debugging)")
      ->check(CLI::Range(1, 65535));
  app.add_option("--threads", overrides.threads, "worker threads (overrides l2.threads)");
  app.add_option("--inline", overrides.inline_mode,
                 "what the event loop serves itself when the data is in memory: off, reads or all (default)");
  app.add_option("--ready-fd", ready_fd, "write \"ready\\n\" to this fd once listening, then close it");
  app.add_option("--stats-fd", stats_fd, "the supervisor's shared stats block: publish RocksDB figures there");
  CLI11_PARSE(app, argc, argv);

  rend::Config config;
  const rend::Status loaded = config_path.empty() ? rend::parse_config(nlohmann::json::object(), config)
                                                  : rend::load_config_file(config_path, config);
  if (!loaded) {
    fprintf(stderr, "rend-l2: bad configuration: %s\n", loaded.message().c_str());
    return rend::kExitBadConfig;
  }
  rend::l2::L2Options options;
  const rend::Status resolved = rend::l2::resolve_options(config, overrides, options);
  if (!resolved) {
    fprintf(stderr, "rend-l2: %s\n", resolved.message().c_str());
    return rend::kExitBadConfig;
  }
  options.ready_fd = ready_fd;
  rend::init_logging("l2", options.log_level);
  signal(SIGPIPE, SIG_IGN);

  rend::SharedStats shared;
  if (stats_fd >= 0 && !rend::SharedStats::attach(stats_fd, shared)) {
    spdlog::critical("fd {} is not rend's shared stats block", stats_fd);
    return rend::kExitBadConfig;
  }
  std::unique_ptr<rend::l2::Store> store;
  std::string damaged;
  const rend::Status opened = rend::l2::Store::open(options.store, store, &damaged);
  if (!opened) {
    spdlog::critical("{}", opened.message());
    return 1;
  }
  if (!damaged.empty() && shared.block() != nullptr) {
    shared.block()->l2.values[static_cast<size_t>(rend::L2Gauge::damaged_stores)].fetch_add(1);
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc;
  {
    rend::l2::Server server(&loop, std::move(options), *store, std::move(shared));
    rc = server.run();
    uv_run(&loop, UV_RUN_DEFAULT);  // the last close callbacks
  }
  uv_loop_close(&loop);
  store->close();
  return rc;
}
