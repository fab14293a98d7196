// The process's thread budget: how many cores lipsync may keep busy. Every pool whose size is
// left at 0 in the config takes it (ONNX Runtime's intra-op threads per model, the task arena,
// the request workers, the renderer's stage workers, x264), so one number - `cpu.threads`, or
// the CPUs the process may run on - bounds them all (README: "Threads").
// Thread contract: set_thread_budget() before any pool is made (main's thread); the getters
// from any thread.
#pragma once

#include <filesystem>
#include <string_view>

#include "core/config_table.h"

namespace lipsync::core {

struct CpuOptions {
  // Config key cpu.threads: the budget (0: available_cpus(); 0..1024).
  int threads = 0;

  void validate() const;
  static const ConfigTable<CpuOptions>& config();
};

// The CPUs this process may run on: its affinity mask (taskset, cpusets), capped by a cgroup v2
// CPU quota (`cpu.max`, containers' --cpus) rounded up; at least 1.
int available_cpus();

// The CPU quota, rounded up, of the cgroup v2 named in `proc_self_cgroup` (the text of
// /proc/self/cgroup) under `cgroup_root` (/sys/fs/cgroup): the tightest `cpu.max` of the cgroup
// and its parents, or 0 when none is set ("max") or readable. available_cpus() uses it.
int cgroup_quota_cpus(const std::filesystem::path& cgroup_root, std::string_view proc_self_cgroup);

// Sets the budget (0: available_cpus()). Pools made earlier keep their size.
void set_thread_budget(int threads);
// The budget: set_thread_budget()'s value, or available_cpus() (at least 1).
int thread_budget();

}  // namespace lipsync::core
