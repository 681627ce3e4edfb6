// How rend-l2 turns its disk budget (l2.max_bytes) into RocksDB sizes.
//
// Eviction is RocksDB's FIFO compaction: every table file sits in L0 and, once the table files
// together pass `sst_budget`, the oldest files are deleted. The budget covers the whole data
// directory, so the table-file share is the budget minus what else lives there at the worst
// moment: the write-ahead log of the memtables not yet flushed, a table file being written by a
// flush, the output of a TableMerger merge that exists alongside its inputs until it finishes,
// and RocksDB's small files (MANIFEST, info LOG, OPTIONS), which are capped separately.
//
// Pure arithmetic, unit tested.
#pragma once

#include <cstdint>

namespace rend::l2 {

struct BudgetPlan {
  uint64_t write_buffer_size = 0;   // one memtable, and about one flushed L0 file
  int max_write_buffer_number = 0;  // memtables (one active, the rest waiting to be flushed)
  uint64_t max_merge_bytes = 0;     // largest TableMerger merge (merged file size bound)
  uint64_t max_total_wal_size = 0;  // WAL size at which RocksDB forces flushes
  uint64_t misc_reserve = 0;        // MANIFEST + OPTIONS (RocksDB logs to rend-l2's log)
  uint64_t sst_budget = 0;          // FIFO's max_table_files_size
};

BudgetPlan plan_budget(uint64_t max_bytes);

}  // namespace rend::l2
