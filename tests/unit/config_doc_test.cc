// The option table (common/config.cc) against docs/operations.md, and its restart-only column
// against what a reload may change.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "common/config.h"

namespace rend {
namespace {

TEST(ConfigDoc, TheOptionReferenceOfTheDocsIsTheTable) {
  std::ifstream in(std::string(REND_SOURCE_DIR) + "/docs/operations.md");
  ASSERT_TRUE(in.good());
  std::stringstream doc;
  doc << in.rdbuf();
  const std::string table = describe_options();
  EXPECT_NE(doc.str().find(table), std::string::npos)
      << "docs/operations.md does not hold `rend --print-options` as it prints today:\n"
      << table;
}

Config parsed(const nlohmann::json& input) {
  Config c;
  const Status s = parse_config(input, c);
  EXPECT_TRUE(s.is_ok()) << s.message();
  return c;
}

TEST(ConfigReload, OnlyRestartOnlyKeysAreReported) {
  const Config running = parsed(nlohmann::json::object());
  const Config reloadable = parsed({{"workers", 3},
                                    {"l1", {{"connections", 4}}},
                                    {"l2", {{"timeout_ms", 10}}},
                                    {"worker", {{"max_pending_requests", 16}}},
                                    {"log_level", "debug"}});
  EXPECT_TRUE(restart_only_changes(running, reloadable).empty());
  const Config restart = parsed({{"listen", {{"port", 12000}}},
                                 {"worker", {{"max_item_size", 2 << 20}}},
                                 {"l1", {{"chunked", true}}},
                                 {"memcached", {{"enabled", false}}},
                                 {"l2", {{"data_dir", "elsewhere"}}},
                                 {"control", {{"socket", "x.ctl"}}},
                                 {"metrics", {{"listen", ""}}}});
  EXPECT_EQ(restart_only_changes(running, restart),
            (std::vector<std::string>{"listen.port", "worker.max_item_size", "l1.chunked", "l2.data_dir",
                                      "memcached.enabled", "metrics.listen", "control.socket"}));
}

}  // namespace
}  // namespace rend
