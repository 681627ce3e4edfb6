// rend-worker: started by the supervisor (fork+exec) with its listening sockets, the shared stats
// block and a readiness pipe passed as inherited file descriptors.
#include <CLI/CLI.hpp>
#include <csignal>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/exit_codes.h"
#include "common/logging.h"
#include "common/uv_loop_close.h"
#include "worker/worker.h"

int main(int argc, char** argv) {
  CLI::App app{"rend-worker: one event loop serving memcached clients (started by rend)"};
  std::string config_json;
  rend::worker::WorkerOptions options;
  int stats_fd = -1;
  app.add_option("--config-json", config_json, "effective configuration, as JSON")->required();
  app.add_option("--slot", options.slot, "worker slot number")->required()->check(CLI::Range(0, 63));
  app.add_option("--tcp-fd", options.tcp_listen_fd, "inherited TCP listening socket");
  app.add_option("--batch-fd", options.batch_listen_fd, "inherited batch-port listening socket");
  app.add_option("--unix-fd", options.unix_listen_fd, "inherited unix listening socket");
  app.add_option("--stats-fd", stats_fd, "inherited shared stats memory")->required();
  app.add_option("--stats-entry", options.stats_entry, "this process's entry among the slot's stats entries")
      ->check(CLI::Range(0, static_cast<int>(rend::kEntriesPerSlot) - 1));
  app.add_option("--ready-fd", options.ready_fd, "pipe to announce readiness on");
  app.add_option("--command-fd", options.command_fd, "socket the supervisor sends commands on");
  CLI11_PARSE(app, argc, argv);

  rend::Config config;
  rend::Status parsed = rend::Status::error("invalid JSON");
  try {
    parsed = rend::parse_config(nlohmann::json::parse(config_json), config);
  } catch (const nlohmann::json::exception& e) {
    parsed = rend::Status::error(e.what());
  }
  if (!parsed) {
    fprintf(stderr, "rend-worker: bad configuration: %s\n", parsed.message().c_str());
    return rend::kExitBadConfig;
  }
  rend::init_logging("worker " + std::to_string(options.slot), config.log_level);
  rend::SharedStats stats;
  if (!rend::SharedStats::attach(stats_fd, stats)) {
    spdlog::critical("fd {} is not rend's shared stats block", stats_fd);
    return rend::kExitBadConfig;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc;
  {
    rend::worker::Worker worker(&loop, std::move(config), options, std::move(stats));
    rc = worker.run();
    // Handles live inside the worker's objects: close them all while those still exist.
    rend::close_loop(&loop);
  }
  return rc;
}
