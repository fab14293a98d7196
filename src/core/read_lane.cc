#include "core/read_lane.h"

#include "core/mutex.h"

namespace lipsync::core {

ReadLane::ReadLane(WorkerPool& pool, std::function<void()> resume)
    : strand_(pool), resume_(std::move(resume)) {}

bool ReadLane::queue(std::size_t bytes, std::function<bool()> work) {
  {
    core::MutexLock lock(mutex_);
    waiting_ += bytes;
  }
  strand_.post([self = shared_from_this(), bytes, work = std::move(work)] {
    std::uint64_t seen = 0;
    {
      core::MutexLock lock(self->mutex_);
      seen = self->wanted_seen_;
    }
    const bool room = work();
    bool resume = false;
    {
      core::MutexLock lock(self->mutex_);
      self->waiting_ -= bytes;
      // A wanted() that came while the work ran is for this "full": the session has room.
      if (!room && self->wanted_seen_ == seen) self->full_ = true;
      resume = self->resume_locked();
    }
    if (resume) self->resume_();
  });
  core::MutexLock lock(mutex_);
  if (full_ || waiting_ > kMaxWaitingBytes) {
    paused_ = true;
    return false;
  }
  return true;
}

void ReadLane::then(std::function<void()> work) {
  strand_.post(std::move(work));
}

void ReadLane::wanted() {
  bool resume = false;
  {
    core::MutexLock lock(mutex_);
    ++wanted_seen_;
    full_ = false;
    resume = resume_locked();
  }
  if (resume) resume_();
}

bool ReadLane::resume_locked() {
  if (!paused_ || full_ || waiting_ > kMaxWaitingBytes / 2) return false;
  paused_ = false;
  return true;
}

}  // namespace lipsync::core
