// rendctl: the operator's command line for a running rend, over its control socket.
//
// Exit codes: 0 done; 1 rend refused or failed the command (the reason is printed);
// 2 rend could not be reached or did not answer in time.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/config.h"

namespace {

using nlohmann::json;

std::string duration(uint64_t s) {
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
  if (s < 86400) return std::to_string(s / 3600) + "h" + std::to_string(s / 60 % 60) + "m";
  return std::to_string(s / 86400) + "d" + std::to_string(s / 3600 % 24) + "h";
}

// Sends one request line and reads one reply line; "" with `error` set on failure.
std::string exchange(const std::string& path, const std::string& request, int timeout_ms, std::string& error) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    error = "control socket path too long: " + path;
    return "";
  }
  std::strcpy(addr.sun_path, path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error = "cannot connect to " + path + ": " + std::strerror(errno) + " (is rend running?)";
    close(fd);
    return "";
  }
  const std::string line = request + "\n";
  if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    error = std::string("cannot send: ") + std::strerror(errno);
    close(fd);
    return "";
  }
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (reply.find('\n') == std::string::npos) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      error = "no answer from rend within " + std::to_string(timeout_ms / 1000) + "s";
      close(fd);
      return "";
    }
    char buf[65536];
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
      error = "rend closed the control connection without answering";
      close(fd);
      return "";
    }
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return reply.substr(0, reply.find('\n'));
}

void print_status(const json& r) {
  const json& s = r["supervisor"];
  std::cout << "rend " << s["version"].get<std::string>() << " (pid " << s["pid"] << "), "
            << s["state"].get<std::string>() << ", up " << duration(s["uptime_s"].get<uint64_t>()) << "\n";
  std::cout << "config "
            << (s["config_file"].get<std::string>().empty() ? "(defaults)" : s["config_file"].get<std::string>())
            << " hash " << s["config_hash"].get<std::string>();
  // An older rend (still running after a package upgrade replaced rendctl) reports neither.
  if (s.contains("restart_hash")) std::cout << " (restart-only options " << s["restart_hash"].get<std::string>() << ")";
  std::cout << "\n";
  const json replaced = s.value("replaced_executables", json::array());
  if (!replaced.empty()) {
    std::cout << "replaced on disk since started (a restart runs the new ones):";
    for (const auto& name : replaced) std::cout << " " << name.get<std::string>();
    std::cout << "\n";
  }
  std::cout << "\n";
  std::printf("%-6s %-8s %-10s %-9s %-7s %s\n", "WORKER", "PID", "STATE", "UPTIME", "CONNS", "RESTARTS");
  for (const auto& w : r["workers"]) {
    std::printf("%-6d %-8d %-10s %-9s %-7llu %d\n", w["slot"].get<int>(), w["pid"].get<int>(),
                w["state"].get<std::string>().c_str(), duration(w["uptime_s"].get<uint64_t>()).c_str(),
                static_cast<unsigned long long>(w["connections"].get<uint64_t>()), w["restarts"].get<int>());
  }
  for (const char* child : {"memcached", "l2"}) {
    if (!r.contains(child)) continue;
    const json& c = r[child];
    std::printf("\n%-10s pid %d, %s, %d restarts", child, c["pid"].get<int>(), c["state"].get<std::string>().c_str(),
                c["restarts"].get<int>());
  }
  std::cout << "\n";
}

// What a command that succeeded says, for a person.
void print_success(const std::string& cmd, const json& reply) {
  if (cmd == "status") {
    print_status(reply);
  } else if (cmd == "version") {
    std::cout << "rend " << reply["version"].get<std::string>() << " (memcached protocol "
              << reply["protocol"].get<std::string>() << ")\n";
  } else if (cmd == "scale") {
    std::cout << "scaled to " << reply["workers"] << " workers\n";
  } else if (cmd == "stop") {
    std::cout << "stopping\n";
  } else if (cmd == "upgrade") {
    std::cout << "upgraded in place: rend " << reply.value("version", "?") << " (pid " << reply.value("pid", 0) << ", "
              << reply.value("workers", 0) << " workers)\n";
  } else {
    std::cout << cmd << ": done\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rendctl: control a running rend"};
  std::string socket_path;
  std::string config_path;
  bool as_json = false;
  int timeout_s = 120;
  app.add_option("-s,--socket", socket_path, "control socket (default: control.socket of --config, or run/rend.ctl)");
  app.add_option("-c,--config", config_path, "rend's config file, to find the control socket");
  app.add_flag("--json", as_json, "print rend's JSON reply");
  app.add_option("-t,--timeout", timeout_s, "seconds to wait for an answer")->check(CLI::PositiveNumber);
  app.require_subcommand(1);
  app.add_subcommand("status", "supervisor, workers and children: pids, states, uptimes, restarts");
  app.add_subcommand("reload", "validate the config file and roll every worker onto it");
  app.add_subcommand("restart", "rolling restart of every worker, one at a time");
  int slot = -1;
  app.add_subcommand("restart-worker", "restart one worker")->add_option("slot", slot, "worker slot")->required();
  int workers = 0;
  app.add_subcommand("scale", "run N workers, adding or draining them live")
      ->add_option("workers", workers, "number of workers")
      ->required();
  app.add_subcommand("restart-memcached",
                     "restart memcached, keeping its items (warm restart) while workers hold L1 requests");
  app.add_subcommand("restart-l2",
                     "restart rend-l2 (after a package upgrade) while workers hold their L2 requests; its data stays "
                     "on disk");
  app.add_subcommand("upgrade",
                     "re-execute rend's binary in place (after a package upgrade): same pid, sockets, memcached, "
                     "rend-l2 and client connections; the workers are rolled onto the new rend-worker");
  app.add_subcommand("stop", "graceful stop: finish in-flight requests, then exit");
  app.add_subcommand("version", "rend's version");
  CLI11_PARSE(app, argc, argv);

  if (socket_path.empty()) {
    socket_path = "run/rend.ctl";
    if (!config_path.empty()) {
      rend::Config config;
      if (rend::Status s = rend::load_config_file(config_path, config); !s) {
        std::cerr << "rendctl: " << s.message() << "\n";
        return 2;
      }
      socket_path = config.control_socket;
    }
  }
  const std::string cmd = app.get_subcommands().front()->get_name();
  json request = {{"cmd", cmd}};
  if (cmd == "restart-worker") request["slot"] = slot;
  if (cmd == "scale") request["workers"] = workers;

  std::string error;
  const std::string line = exchange(socket_path, request.dump(), timeout_s * 1000, error);
  if (line.empty()) {
    std::cerr << "rendctl: " << error << "\n";
    return 2;
  }
  json reply;
  try {
    reply = json::parse(line);
  } catch (const json::exception&) {
    std::cerr << "rendctl: unreadable answer: " << line << "\n";
    return 2;
  }
  const bool ok = reply.value("ok", false);
  if (as_json) {
    std::cout << reply.dump(2) << "\n";
  } else if (!ok) {
    std::cerr << "rendctl: " << cmd << " failed: " << reply.value("error", "unknown error") << "\n";
  } else {
    print_success(cmd, reply);
  }
  return ok ? 0 : 1;
}
