#include "core/thread_budget.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

namespace lipsync::core {
namespace {

std::atomic<int> g_budget{0};  // 0: not set

}  // namespace

int cgroup_quota_cpus(const std::filesystem::path& cgroup_root, std::string_view proc_self_cgroup) {
  std::string path;  // the v2 hierarchy's line is "0::/path"
  for (std::size_t at = 0; at < proc_self_cgroup.size();) {
    std::size_t end = proc_self_cgroup.find('\n', at);
    if (end == std::string_view::npos) end = proc_self_cgroup.size();
    const std::string_view line = proc_self_cgroup.substr(at, end - at);
    if (line.substr(0, 3) == "0::") path = std::string(line.substr(3));
    at = end + 1;
  }
  if (path.empty() || path[0] != '/') return 0;
  int best = 0;
  while (true) {  // the cgroup, then each parent up to the root
    std::ifstream f(cgroup_root.string() + (path == "/" ? "" : path) + "/cpu.max");
    std::string quota;
    double period = 0;
    if (f >> quota >> period && quota != "max" && period > 0) {
      const double q = std::strtod(quota.c_str(), nullptr);
      if (q > 0) {
        const int cpus = std::max(1, static_cast<int>(std::ceil(q / period)));
        best = best == 0 ? cpus : std::min(best, cpus);
      }
    }
    if (path == "/") break;
    const std::size_t slash = path.rfind('/');
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  return best;
}

void CpuOptions::validate() const {
  config().validate(*this);
}

const ConfigTable<CpuOptions>& CpuOptions::config() {
  static const auto table = ConfigTable<CpuOptions>("cpu").integer(
      "threads", &CpuOptions::threads, 0, 1024,
      "cores lipsync keeps busy; every thread count left at 0 takes it. 0 = the CPUs the "
      "process may run on (affinity mask, cgroup quota)");
  return table;
}

int available_cpus() {
  int cpus = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = static_cast<int>(std::thread::hardware_concurrency());
  std::ifstream self("/proc/self/cgroup");
  const std::string text((std::istreambuf_iterator<char>(self)), std::istreambuf_iterator<char>());
  const int quota = cgroup_quota_cpus("/sys/fs/cgroup", text);
  if (quota > 0) cpus = cpus > 0 ? std::min(cpus, quota) : quota;
  return std::max(cpus, 1);
}

void set_thread_budget(int threads) {
  g_budget.store(std::max(threads, 0));
}

int thread_budget() {
  const int set = g_budget.load();
  return set > 0 ? set : available_cpus();
}

}  // namespace lipsync::core
