#include "loadgen/stats.h"

#include <algorithm>

namespace rend::loadgen {

std::string_view error_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kProtocol: return "protocol error";
    case ErrorKind::kWrongValue: return "wrong value";
    case ErrorKind::kUnexpectedStatus: return "unexpected status";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kConnection: return "connection error";
  }
  return "?";
}

std::string_view error_json_key(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kProtocol: return "protocol";
    case ErrorKind::kWrongValue: return "wrong_value";
    case ErrorKind::kUnexpectedStatus: return "unexpected_status";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kConnection: return "connection";
  }
  return "?";
}

void PhaseStats::merge(const PhaseStats& other) {
  for (size_t i = 0; i < kOpKinds; ++i) {
    commands[i].ops += other.commands[i].ops;
    commands[i].keys += other.commands[i].keys;
    commands[i].hits += other.commands[i].hits;
    commands[i].latency.merge(other.commands[i].latency);
  }
  latency.merge(other.latency);
  send_lag.merge(other.send_lag);
  ops += other.ops;
  aborted += other.aborted;
  unsent += other.unsent;
  unjudged += other.unjudged;
  // Keep at most kMaxSamplesPerKind of each kind: the other's samples are in kind order of
  // occurrence, and each starts with its kind's name.
  std::array<size_t, kErrorKinds> kept{};
  for (const auto& s : samples) {
    for (size_t i = 0; i < kErrorKinds; ++i) {
      if (s.starts_with(error_name(static_cast<ErrorKind>(i)))) ++kept[i];
    }
  }
  for (const auto& s : other.samples) {
    for (size_t i = 0; i < kErrorKinds; ++i) {
      if (s.starts_with(error_name(static_cast<ErrorKind>(i))) && kept[i] < kMaxSamplesPerKind) {
        ++kept[i];
        samples.push_back(s);
      }
    }
  }
  for (size_t i = 0; i < kErrorKinds; ++i) errors[i] += other.errors[i];
  errors_total += other.errors_total;
  begin_ns = begin_ns == 0 ? other.begin_ns : std::min(begin_ns, other.begin_ns);
  end_ns = std::max(end_ns, other.end_ns);
}

}  // namespace rend::loadgen
