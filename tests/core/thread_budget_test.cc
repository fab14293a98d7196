#include "core/thread_budget.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <fstream>

#include "support/test_data.h"

namespace lipsync::core {
namespace {

void write(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

TEST(ThreadBudget, AvailableCpusIsTheAffinityMaskAtMost) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_GE(available_cpus(), 1);
  EXPECT_LE(available_cpus(), CPU_COUNT(&set));
}

TEST(ThreadBudget, ASetBudgetWinsAndZeroGoesBackToTheCpus) {
  set_thread_budget(3);
  EXPECT_EQ(thread_budget(), 3);
  set_thread_budget(0);
  EXPECT_EQ(thread_budget(), available_cpus());
}

TEST(ThreadBudget, TheTightestCgroupQuotaRoundedUpCounts) {
  testing::TempDir root;
  write(root / "a" / "cpu.max", "250000 100000\n");     // 2.5 CPUs -> 3
  write(root / "a" / "b" / "cpu.max", "max 100000\n");  // no limit of its own
  EXPECT_EQ(cgroup_quota_cpus(root.path(), "0::/a/b\n"), 3);
  write(root / "cpu.max", "150000 100000\n");  // the root's 1.5 -> 2 is tighter
  EXPECT_EQ(cgroup_quota_cpus(root.path(), "0::/a/b\n"), 2);
  write(root / "a" / "b" / "cpu.max", "50000 100000\n");  // half a CPU is still one
  EXPECT_EQ(cgroup_quota_cpus(root.path(), "12:cpu:/x\n0::/a/b"), 1);
}

TEST(ThreadBudget, NoQuotaOrNoV2HierarchyIsZero) {
  testing::TempDir root;
  EXPECT_EQ(cgroup_quota_cpus(root.path(), "0::/a\n"), 0);  // no cpu.max files
  write(root / "cpu.max", "max 100000\n");
  EXPECT_EQ(cgroup_quota_cpus(root.path(), "0::/\n"), 0);
  write(root / "cpu.max", "200000 100000\n");
  EXPECT_EQ(cgroup_quota_cpus(root.path(), "0::/\n"), 2);
  EXPECT_EQ(cgroup_quota_cpus(root.path(), "4:cpu,cpuacct:/\n"), 0);  // cgroup v1 only
  EXPECT_EQ(cgroup_quota_cpus(root.path(), ""), 0);
  write(root / "cpu.max", "garbage\n");
  EXPECT_EQ(cgroup_quota_cpus(root.path(), "0::/\n"), 0);
}

}  // namespace
}  // namespace lipsync::core
