#include "supervisor/metrics_exporter.h"

#include <fmt/format.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <string_view>
#include <vector>

#include "common/version.h"

namespace rend::supervisor {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

namespace {

// Prometheus name and help of the worker counters exported one-to-one.
struct CounterExport {
  Counter counter;
  const char* name;
  const char* help;
};

constexpr CounterExport kCounterExports[] = {
    {Counter::total_connections, "rend_client_connections_accepted_total", "Client connections accepted."},
    {Counter::closed_connections, "rend_client_connections_closed_total", "Client connections closed."},
    {Counter::rejected_connections, "rend_client_connections_rejected_total",
     "Client connections closed at once: over worker.max_connections, or arriving during a drain."},
    {Counter::accept_pauses, "rend_accept_pauses_total",
     "Times a worker stopped accepting, out of descriptors (new clients wait in the listen backlog)."},
    {Counter::handed_over_connections, "rend_client_connections_handed_over_total",
     "Client connections a departing worker (rolled, reloaded or scaled down) handed to another at a "
     "request boundary, socket and unread input included."},
    {Counter::idle_kicks, "rend_client_connections_idle_closed_total",
     "Client connections closed for being idle past worker.idle_timeout_s."},
    {Counter::bytes_read, "rend_client_read_bytes_total", "Bytes read from clients."},
    {Counter::bytes_written, "rend_client_written_bytes_total", "Bytes written to clients."},
    {Counter::protocol_errors, "rend_client_protocol_errors_total", "Malformed or unknown client requests."},
    {Counter::get_hits, "rend_get_keys_hit_total", "Keys found by get-family requests (any tier)."},
    {Counter::get_misses, "rend_get_keys_miss_total", "Keys not found by get-family requests."},
    {Counter::store_too_large, "rend_store_too_large_total", "Writes refused: value over worker.max_item_size."},
    {Counter::backfills, "rend_backfills_total", "L2 hits copied into L1."},
    {Counter::backfill_errors, "rend_backfill_errors_total", "Backfills L1 did not take."},
    {Counter::backfills_skipped, "rend_backfills_skipped_total",
     "L2 hits not copied into L1 because l2.backfill_admission (frequency) refused the key: seen once "
     "lately while L1 evicts."},
    {Counter::l2_fallbacks, "rend_l2_fallbacks_total", "Reads served from L1 alone because L2 was unreachable."},
    {Counter::l2_write_failures, "rend_l2_write_failures_total",
     "Writes refused with SERVER_ERROR because L2 did not take them."},
    {Counter::raced_writes, "rend_raced_writes_total",
     "Writes L2 found racing another worker's write of the key; their L1 copy is buried again "
     "once the race window has passed."},
};

ClientMetric::Label label(std::string name, std::string value) { return {std::move(name), std::move(value)}; }

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add_value(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
}

}  // namespace

class MetricsExporter::Collector : public prometheus::Collectable {
 public:
  Collector(const SharedStats& stats, const SupervisorMetrics& sup) : stats_(stats), sup_(sup) {}

  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    std::vector<size_t> slots;
    for (size_t i = 0; i < kMaxWorkerSlots; ++i) {
      // A slot that ever had a worker keeps reporting, so its counters never vanish or go back.
      if (stats_.slot_used(i)) slots.push_back(i);
    }
    auto info = family("rend_build_info", "rend's version.", MetricType::Gauge);
    add_value(info, {label("version", kVersion), label("protocol", kProtocolVersion)}, 1);
    out.push_back(std::move(info));
    collect_requests(slots, out);
    collect_worker_counters(slots, out);
    collect_backends(slots, out);
    collect_supervisor(slots, out);
    collect_l2(out);
    return out;
  }

  // Requests and their latency by worker, tier, command and result.
  void collect_requests(const std::vector<size_t>& slots, std::vector<MetricFamily>& out) const {
    const auto relaxed = std::memory_order_relaxed;
    auto requests =
        family("rend_requests_total", "Requests by tier (client, l1, l2), command and result.", MetricType::Counter);
    auto latency =
        family("rend_request_duration_seconds",
               "Request latency by tier and command: client = received to reply ready.", MetricType::Histogram);
    for (size_t s : slots) {
      // The slot's figures are the sums over its entries (one per worker process it has had).
      auto metrics_of = [&](size_t t, size_t c, auto read) {
        return stats_.sum(s, [&](const WorkerSlot& e) { return read(e.requests.by[t][c]); });
      };
      for (size_t t = 0; t < kTiers; ++t) {
        for (size_t c = 0; c < kMetricCommands; ++c) {
          uint64_t total = 0;
          for (size_t r = 0; r < kResults; ++r) {
            const uint64_t v = metrics_of(t, c, [&](const CommandMetrics& m) { return m.requests[r].load(relaxed); });
            total += v;
            if (v == 0) continue;
            add_value(requests,
                      {label("worker", std::to_string(s)), label("tier", std::string(tier_name(Tier(t)))),
                       label("command", std::string(metric_command_name(MetricCommand(c)))),
                       label("result", std::string(result_name(Result(r))))},
                      static_cast<double>(v));
          }
          if (total == 0) continue;
          ClientMetric m;
          m.label = {label("worker", std::to_string(s)), label("tier", std::string(tier_name(Tier(t)))),
                     label("command", std::string(metric_command_name(MetricCommand(c))))};
          uint64_t cumulative = 0;
          for (size_t b = 0; b < kLatencyBuckets; ++b) {
            cumulative += metrics_of(t, c, [&](const CommandMetrics& h) { return h.buckets[b].load(relaxed); });
            const double bound =
                b < kLatencyBoundsUs.size() ? kLatencyBoundsUs[b] / 1e6 : std::numeric_limits<double>::infinity();
            m.histogram.bucket.push_back({cumulative, bound});
          }
          m.histogram.sample_count = cumulative;
          m.histogram.sample_sum =
              static_cast<double>(metrics_of(t, c, [&](const CommandMetrics& h) { return h.sum_ns.load(relaxed); })) /
              1e9;
          latency.metric.push_back(std::move(m));
        }
      }
    }
    out.push_back(std::move(requests));
    out.push_back(std::move(latency));
  }

  // Connections, bytes and the other per-worker counters.
  void collect_worker_counters(const std::vector<size_t>& slots, std::vector<MetricFamily>& out) const {
    auto connections = family("rend_client_connections", "Client connections open now.", MetricType::Gauge);
    for (size_t s : slots) {
      add_value(connections, {label("worker", std::to_string(s))},
                static_cast<double>(stats_.value(s, Counter::curr_connections)));
    }
    out.push_back(std::move(connections));

    for (const auto& e : kCounterExports) {
      auto f = family(e.name, e.help, MetricType::Counter);
      for (size_t s : slots) {
        add_value(f, {label("worker", std::to_string(s))}, static_cast<double>(stats_.value(s, e.counter)));
      }
      out.push_back(std::move(f));
    }
  }

  // Backend connections per worker and tier.
  void collect_backends(const std::vector<size_t>& slots, std::vector<MetricFamily>& out) const {
    auto backend_counter = [&](const char* name, const char* help, Counter l1, Counter l2) {
      auto f = family(name, help, MetricType::Counter);
      for (size_t s : slots) {
        for (auto [tier, c] : {std::pair{"l1", l1}, std::pair{"l2", l2}}) {
          add_value(f, {label("worker", std::to_string(s)), label("tier", tier)},
                    static_cast<double>(stats_.value(s, c)));
        }
      }
      out.push_back(std::move(f));
    };
    backend_counter("rend_backend_reconnects_total", "Backend connection attempts after a failure.",
                    Counter::l1_reconnects, Counter::l2_reconnects);
    backend_counter("rend_backend_timeouts_total", "Backend requests that passed their deadline.", Counter::l1_timeouts,
                    Counter::l2_timeouts);
    backend_counter("rend_backend_errors_total", "Backend requests failed (connection lost or timeout).",
                    Counter::l1_errors, Counter::l2_errors);
    auto up = family("rend_backend_connections_up", "Backend connections established now.", MetricType::Gauge);
    for (size_t s : slots) {
      for (auto [tier, c] :
           {std::pair{"l1", Counter::l1_connections_up}, std::pair{"l2", Counter::l2_connections_up}}) {
        add_value(up, {label("worker", std::to_string(s)), label("tier", tier)},
                  static_cast<double>(stats_.value(s, c)));
      }
    }
    out.push_back(std::move(up));
  }

  // The supervisor's own: restarts, reloads, children up.
  void collect_supervisor(const std::vector<size_t>& slots, std::vector<MetricFamily>& out) const {
    const auto relaxed = std::memory_order_relaxed;
    auto restarts = family("rend_worker_restarts_total", "Workers restarted after dying.", MetricType::Counter);
    for (size_t s : slots)
      add_value(restarts, {label("worker", std::to_string(s))}, sup_.worker_restarts[s].load(relaxed));
    out.push_back(std::move(restarts));
    auto child_restarts =
        family("rend_child_restarts_total", "memcached and rend-l2 restarted after dying.", MetricType::Counter);
    add_value(child_restarts, {label("child", "memcached")}, sup_.memcached_restarts.load(relaxed));
    add_value(child_restarts, {label("child", "rend-l2")}, sup_.l2_restarts.load(relaxed));
    out.push_back(std::move(child_restarts));
    auto reloads = family("rend_reloads_total", "Configuration reloads by result.", MetricType::Counter);
    add_value(reloads, {label("result", "ok")}, sup_.reloads_ok.load(relaxed));
    add_value(reloads, {label("result", "failed")}, sup_.reloads_failed.load(relaxed));
    out.push_back(std::move(reloads));
    auto upgrades = family("rend_upgrades_total", "In-place upgrades of rend's binary (rendctl upgrade) by result.",
                           MetricType::Counter);
    add_value(upgrades, {label("result", "ok")}, sup_.upgrades_ok.load(relaxed));
    add_value(upgrades, {label("result", "failed")}, sup_.upgrades_failed.load(relaxed));
    out.push_back(std::move(upgrades));
    auto children = family("rend_children_up", "Supervised processes running now.", MetricType::Gauge);
    add_value(children, {label("child", "worker")}, static_cast<double>(sup_.workers_up.load(relaxed)));
    add_value(children, {label("child", "memcached")}, static_cast<double>(sup_.memcached_up.load(relaxed)));
    add_value(children, {label("child", "rend-l2")}, static_cast<double>(sup_.l2_up.load(relaxed)));
    out.push_back(std::move(children));
  }

  // rend-l2's RocksDB figures, once it has published them.
  void collect_l2(std::vector<MetricFamily>& out) const {
    const auto relaxed = std::memory_order_relaxed;
    const L2Slot& l2 = stats_.block()->l2;
    if (l2.pid.load(relaxed) != 0) {
      static constexpr struct {
        L2Gauge gauge;
        const char* name;
        const char* help;
        MetricType type;
        double scale = 1.0;  // from rend-l2's unit to Prometheus' base unit
      } kL2[] = {
          {L2Gauge::live_data_bytes, "rend_l2_live_data_bytes", "RocksDB estimate of live data size.",
           MetricType::Gauge},
          {L2Gauge::sst_files_bytes, "rend_l2_sst_files_bytes", "Total size of RocksDB SST files.", MetricType::Gauge},
          {L2Gauge::pending_compaction_bytes, "rend_l2_pending_compaction_bytes",
           "RocksDB estimate of bytes compaction still has to rewrite.", MetricType::Gauge},
          {L2Gauge::write_stall_micros, "rend_l2_write_stall_seconds_total", "Time RocksDB stalled writes.",
           MetricType::Counter, 1e-6},
          {L2Gauge::block_cache_hits, "rend_l2_block_cache_hits_total", "RocksDB block cache hits.",
           MetricType::Counter},
          {L2Gauge::block_cache_misses, "rend_l2_block_cache_misses_total", "RocksDB block cache misses.",
           MetricType::Counter},
          {L2Gauge::disk_bytes, "rend_l2_disk_bytes", "Size of rend-l2's data directory on disk.", MetricType::Gauge},
          {L2Gauge::keys_estimate, "rend_l2_keys", "RocksDB estimate of the number of keys.", MetricType::Gauge},
          {L2Gauge::damaged_stores, "rend_l2_damaged_stores_total",
           "Times rend-l2 found its store damaged at start, moved it aside and started empty.", MetricType::Counter},
          {L2Gauge::write_errors, "rend_l2_store_write_errors_total",
           "Write requests rend-l2 answered SERVER_ERROR because its store could not write them (a full or "
           "read-only disk, an I/O error).",
           MetricType::Counter},
          {L2Gauge::write_stops, "rend_l2_store_write_stops_total",
           "Times rend-l2's store stopped taking writes: a RocksDB background error, or a read-only open at start.",
           MetricType::Counter},
          {L2Gauge::writable, "rend_l2_store_writable",
           "1 while rend-l2's store takes writes; 0 while its disk is full or read-only (reads are still served).",
           MetricType::Gauge},
      };
      for (const auto& g : kL2) {
        auto f = family(g.name, g.help, g.type);
        add_value(f, {}, static_cast<double>(l2.values[static_cast<size_t>(g.gauge)].load(relaxed)) * g.scale);
        out.push_back(std::move(f));
      }
    }
  }

 private:
  const SharedStats& stats_;
  const SupervisorMetrics& sup_;
};

MetricsExporter::MetricsExporter(const SharedStats& stats, const SupervisorMetrics& supervisor)
    : collector_(std::make_shared<Collector>(stats, supervisor)) {}

MetricsExporter::~MetricsExporter() = default;

Status MetricsExporter::start(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    return Status::error(fmt::format("metrics.listen: cannot serve {}: {}", address, e.what()));
  }
  exposer_->RegisterCollectable(collector_);
  return Status::ok();
}

}  // namespace rend::supervisor
