// What one phase of a run measured: per command counts and latencies, errors by kind. One
// PhaseStats per worker thread, written only by its thread, merged after the phase.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "loadgen/histogram.h"
#include "loadgen/workload.h"

namespace rend::loadgen {

enum class ErrorKind : uint8_t {
  kProtocol,          // a reply that is not valid memcached protocol, or not for the request sent
  kWrongValue,        // a value (or its flags) differs from what was written
  kUnexpectedStatus,  // a valid reply, but not one of the correct outcomes
  kTimeout,           // no reply within --timeout
  kConnection,        // connect failed, reset, or closed by the server
};
inline constexpr size_t kErrorKinds = 5;
std::string_view error_name(ErrorKind kind);      // "protocol error", ...
std::string_view error_json_key(ErrorKind kind);  // "protocol", ...

struct CommandStats {
  uint64_t ops = 0;
  uint64_t keys = 0;  // keys asked for by reads (a multi-get asks for several)
  uint64_t hits = 0;  // keys found by reads
  Histogram latency;
};

struct PhaseStats {
  static constexpr size_t kMaxSamplesPerKind = 5;

  std::array<CommandStats, kOpKinds> commands;
  Histogram latency;  // every request
  // Open loop: how late each request was sent after its intended time. Large values mean the
  // loadgen itself (or its CPU) could not keep the schedule: the latencies then include that.
  Histogram send_lag;
  uint64_t ops = 0;       // requests answered (correctly or not)
  uint64_t aborted = 0;   // requests in flight on a connection that failed
  uint64_t unjudged = 0;  // reads of a key whose last store on the connection failed
  uint64_t unsent = 0;    // open loop: requests due before the end but never sent (fell behind)
  std::array<uint64_t, kErrorKinds> errors{};
  uint64_t errors_total = 0;
  std::vector<std::string> samples;  // the first few error descriptions of each kind
  int64_t begin_ns = 0;              // the phase's start
  int64_t end_ns = 0;                // the last reply (or the phase's end)

  void add_error(ErrorKind kind, std::string description) {
    if (++errors[static_cast<size_t>(kind)] <= kMaxSamplesPerKind) {
      samples.push_back(std::string(error_name(kind)) + ": " + std::move(description));
    }
    ++errors_total;
  }
  void merge(const PhaseStats& other);
};

}  // namespace rend::loadgen
