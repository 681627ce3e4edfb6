#include "l2/rocksdb_logger.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <unordered_map>

namespace rend::l2 {

namespace {

class SpdlogLogger : public rocksdb::Logger {
 public:
  SpdlogLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}

  // RocksDB calls this overload only for lines without a level (it treats them as info).
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap); }

  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) return;
    if (!first_in_a_while(format)) return;
    char line[1024];
    const int n = std::vsnprintf(line, sizeof line, format, ap);
    if (n < 0) return;
    spdlog::log(level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? spdlog::level::err : spdlog::level::warn, "rocksdb: {}",
                line);
  }

 private:
  // RocksDB repeats some lines while a condition lasts (a full disk: "Cannot clear hard error"
  // every few seconds). Each line (by its format) is passed on at most once a minute.
  bool first_in_a_while(const char* format) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(mutex_);
    auto [it, fresh] = last_.try_emplace(format, now);
    if (!fresh && now - it->second < std::chrono::minutes(1)) return false;
    it->second = now;
    return true;
  }

  std::mutex mutex_;
  std::unordered_map<const char*, std::chrono::steady_clock::time_point> last_;
};

}  // namespace

std::shared_ptr<rocksdb::Logger> make_rocksdb_logger() { return std::make_shared<SpdlogLogger>(); }

}  // namespace rend::l2
