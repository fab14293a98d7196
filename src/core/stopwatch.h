// Stopwatch: monotonic elapsed time for timings and benchmarks.
// Thread contract: one instance per thread.
#pragma once

#include <chrono>

namespace lipsync::core {

// Measures wall time since construction or the last reset().
class Stopwatch {
 public:
  Stopwatch() : start_(Clock::now()) {}
  void reset() { start_ = Clock::now(); }
  double elapsed_ms() const {
    return std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
  }
  double elapsed_us() const {
    return std::chrono::duration<double, std::micro>(Clock::now() - start_).count();
  }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_;
};

}  // namespace lipsync::core
