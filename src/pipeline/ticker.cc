#include "pipeline/ticker.h"

#include "core/mutex.h"

namespace lipsync::pipeline {

Ticker::Ticker() : thread_([this] { loop(); }) {}

Ticker::~Ticker() {
  stop();
}

void Ticker::stop() {
  std::vector<Entry> dropped;
  {
    core::MutexLock lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  core::MutexLock lock(mutex_);
  while (!heap_.empty()) {
    dropped.push_back(heap_.top());
    heap_.pop();
  }
  // `dropped` goes after the lock: a session's last owner may be here.
}

void Ticker::add(std::shared_ptr<TickClient> client) {
  const SteadyTime due = client->next_tick();
  {
    core::MutexLock lock(mutex_);
    if (stopping_) return;  // dropped (outside the lock)
    heap_.push({due, std::move(client)});
  }
  wake_.notify_all();
}

std::size_t Ticker::clients() const {
  core::MutexLock lock(mutex_);
  return heap_.size();
}

void Ticker::loop() {
  core::MutexLock lock(mutex_);
  while (!stopping_) {
    if (heap_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const SteadyTime due = heap_.top().due;
    if (SteadyClock::now() < due) {
      wake_.wait_until(lock, due);
      continue;
    }
    Entry entry = heap_.top();
    heap_.pop();
    lock.unlock();
    const bool again = entry.client->tick();
    const SteadyTime next = again ? entry.client->next_tick() : SteadyTime{};
    if (!again) entry.client.reset();  // a finished session goes without the lock held
    lock.lock();
    if (again) heap_.push({next, std::move(entry.client)});
  }
}

}  // namespace lipsync::pipeline
