// rend: the supervisor. `rend --config FILE` runs the stack; `rend --check-config FILE` validates.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "common/config.h"
#include "common/logging.h"
#include "common/uv_loop_close.h"
#include "common/version.h"
#include "supervisor/supervisor.h"

int main(int argc, char** argv) {
  CLI::App app{"rend: a memcached-compatible caching proxy (supervisor)"};
  std::string config_path;
  std::string check_path;
  bool print_options = false;
  bool version = false;
  bool as_json = false;
  app.add_option("-c,--config", config_path, "configuration file (JSON); defaults apply when omitted");
  app.add_option("--check-config", check_path, "validate this configuration file and exit");
  app.add_flag("--json", as_json,
               "with --check-config: print the result as JSON, with the file's config_hash and restart_hash "
               "(compare them with rendctl --json status to tell whether a reload or a restart applies it)");
  app.add_flag("--print-options", print_options, "print every configuration option as a Markdown table row");
  app.add_flag("-V,--version", version, "print the version");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::printf("rend %s\n", rend::kVersion);
    return 0;
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
