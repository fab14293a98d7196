// Waiting in tests for something another thread or process does.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace lipsync::testing {

// Waits until `pred` holds (polling every 20 ms) or `ms` pass; returns whether it held.
inline bool eventually(const std::function<bool()>& pred, int ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

}  // namespace lipsync::testing
