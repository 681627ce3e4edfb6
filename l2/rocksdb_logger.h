// RocksDB's own log, sent to rend-l2's log instead of a LOG file in the data directory.
//
// Two reasons. A LOG file shares the data's disk: when that disk fills, RocksDB 7.8's file
// writer asserts on the next line it logs after a failed one, and rend-l2 aborts instead of
// answering SERVER_ERROR (found on a full tmpfs). And an operator reads one log, the
// supervisor's, not a file buried in the data directory. Only warnings and errors are passed
// on: RocksDB's info lines (options dumps, statistics every few minutes) would drown rend's own.
#pragma once

#include <rocksdb/env.h>

#include <memory>

namespace rend::l2 {

std::shared_ptr<rocksdb::Logger> make_rocksdb_logger();

}  // namespace rend::l2
