// rend: the supervisor. `rend --config FILE` runs the stack; `rend --check-config FILE` validates.
// --resume-fd and --check-upgrade are for rend itself: an in-place upgrade (supervisor_upgrade.cc).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "common/config.h"
#include "common/logging.h"
#include "common/shared_stats.h"
#include "common/uv_loop_close.h"
#include "common/version.h"
#include "supervisor/supervisor.h"
#include "supervisor/upgrade_state.h"

namespace {

// rend --check-upgrade: could this binary take over from the running supervisor whose state is in
// `state_fd` and whose stats block is `stats_fd`? The running one asks before executing us.
int check_upgrade(int state_fd, int stats_fd) {
  rend::supervisor::UpgradeState state;
  rend::Config config;
  rend::SharedStats stats;
  rend::Status s = rend::supervisor::read_upgrade_state(state_fd, state);
  if (s) s = rend::parse_config(state.config, config);
  if (s && !rend::SharedStats::attach(stats_fd, stats)) {
    s = rend::Status::error("the shared stats block has another layout than this binary's; restart rend instead");
  }
  if (!s) {
    std::fprintf(stderr, "rend --check-upgrade: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rend: a memcached-compatible caching proxy (supervisor)"};
  std::string config_path;
  std::string check_path;
  bool print_options = false;
  bool version = false;
  bool as_json = false;
  int resume_fd = -1;
  std::string upgrade_failed;
  int check_upgrade_fd = -1;
  int check_stats_fd = -1;
  app.add_option("-c,--config", config_path, "configuration file (JSON); defaults apply when omitted");
  app.add_option("--check-config", check_path, "validate this configuration file and exit");
  app.add_flag("--json", as_json,
               "with --check-config: print the result as JSON, with the file's config_hash and restart_hash "
               "(compare them with rendctl --json status to tell whether a reload or a restart applies it)");
  app.add_flag("--print-options", print_options, "print every configuration option as a Markdown table row");
  app.add_flag("-V,--version", version, "print the version");
  app.add_option("--resume-fd", resume_fd, "(internal) take over from the previous image after an in-place upgrade");
  app.add_option("--upgrade-failed", upgrade_failed, "(internal) with --resume-fd: why the new binary gave up");
  app.add_option("--check-upgrade", check_upgrade_fd, "(internal) check an upgrade state before an in-place upgrade");
  app.add_option("--check-stats-fd", check_stats_fd, "(internal) the stats block for --check-upgrade");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::printf("rend %s\n", rend::kVersion);
    return 0;
  }
  if (check_upgrade_fd >= 0) return check_upgrade(check_upgrade_fd, check_stats_fd);
  if (resume_fd >= 0) {
    signal(SIGPIPE, SIG_IGN);
    return rend::supervisor::resume_supervisor(resume_fd, upgrade_failed);
  }
  if (print_options) {
    std::fputs(rend::describe_options().c_str(), stdout);
    return 0;
  }
  rend::Config config;
  if (!check_path.empty()) {
    const rend::Status s = rend::load_config_file(check_path, config);
    if (as_json) {
      const nlohmann::json out = s ? nlohmann::json{{"ok", true},
                                                    {"config_hash", rend::config_hash(config)},
                                                    {"restart_hash", rend::restart_hash(config)}}
                                   : nlohmann::json{{"ok", false}, {"error", s.message()}};
      std::printf("%s\n", out.dump().c_str());
    } else if (s) {
      std::printf("%s: ok\n", check_path.c_str());
    } else {
      std::fprintf(stderr, "invalid: %s\n", s.message().c_str());
    }
    return s ? 0 : 1;
  }
  rend::Status loaded = config_path.empty() ? rend::parse_config(nlohmann::json::object(), config)
                                            : rend::load_config_file(config_path, config);
  if (!loaded) {
    std::fprintf(stderr, "rend: %s\n", loaded.message().c_str());
    return 1;
  }
  rend::init_logging("rend", config.log_level);
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc;
  {
    rend::supervisor::Supervisor supervisor(&loop, config_path, std::move(config));
    rc = supervisor.run();
    // Handles live inside the supervisor's objects: close them all while those still exist.
    rend::close_loop(&loop);
  }
  return rc;
}
