// Ticker: the one clock thread that wakes every live session on its ticks (frame k of a session
// is due at t0 + 40 ms x k). It keeps the sessions in a heap by their next tick and calls each
// one's tick() when it is due; tick() must be quick (it only hands over a prepared frame). A
// session leaves when its tick() returns false.
// Thread contract: add() from any thread; tick() runs on the ticker's thread.
#pragma once

#include <memory>
#include <queue>
#include <thread>
#include <vector>

#include "core/mutex.h"
#include "pipeline/batch_policy.h"

namespace lipsync::pipeline {

// What the ticker drives.
class TickClient {
 public:
  virtual ~TickClient() = default;
  // When the next tick is due.
  virtual SteadyTime next_tick() const = 0;
  // Emits the tick that is due; false when the client is done (it is then dropped).
  virtual bool tick() = 0;
};

class Ticker {
 public:
  Ticker();
  // Stops the thread; clients still registered are dropped without another tick.
  ~Ticker();
  // The same, at once; later add() calls drop their client. For an owner that must stop the
  // clock before the threads that may still add() are gone.
  void stop();
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

  void add(std::shared_ptr<TickClient> client);
  std::size_t clients() const;

 private:
  struct Entry {
    SteadyTime due;
    std::shared_ptr<TickClient> client;
    bool operator>(const Entry& other) const { return due > other.due; }
  };
  void loop();

  mutable core::Mutex mutex_;
  core::CondVar wake_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_ LIPSYNC_GUARDED_BY(mutex_);
  bool stopping_ LIPSYNC_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace lipsync::pipeline
