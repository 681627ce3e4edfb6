// Process-wide logging on spdlog: one line per event to stderr, prefixed with the process role
// ("rend", "worker 3", ...) so the supervisor's combined output stays readable.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace rend {

// Sets the log pattern, the role shown on every line, and the level ("debug", "info", "warn", ...).
void init_logging(const std::string& role, const std::string& level);

}  // namespace rend
