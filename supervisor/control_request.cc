#include "supervisor/control_request.h"

#include <fmt/format.h>

#include <limits>
#include <nlohmann/json.hpp>

namespace rend::supervisor {

namespace {

// An optional integer field: absent leaves `out` alone; anything but an integer that fits an int
// is an error.
Status int_field(const nlohmann::json& request, const char* name, int& out) {
  auto it = request.find(name);
  if (it == request.end()) return Status::ok();
  if (!it->is_number_integer()) return Status::error(fmt::format("{}: must be an integer", name));
  const auto v = it->get<int64_t>();
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    return Status::error(fmt::format("{}: out of range", name));
  }
  out = static_cast<int>(v);
  return Status::ok();
}

}  // namespace

Status parse_control_request(std::string_view line, ControlRequest& out) {
  const nlohmann::json request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) return Status::error("invalid JSON request");
  if (!request.is_object()) return Status::error("a request is a JSON object");
  auto cmd = request.find("cmd");
  if (cmd == request.end() || !cmd->is_string()) return Status::error("cmd: missing or not a string");
  out = ControlRequest{};
  out.cmd = cmd->get<std::string>();
  if (Status s = int_field(request, "slot", out.slot); !s) return s;
  if (Status s = int_field(request, "workers", out.workers); !s) return s;
  return Status::ok();
}

}  // namespace rend::supervisor
