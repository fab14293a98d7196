// Mutex, MutexLock and CondVar: std::mutex, a scoped lock and std::condition_variable with Clang's
// thread-safety attributes, so that a build with clang -Wthread-safety (every clang build of the
// project; the `clang` preset makes it an error) checks that a member declared
// LIPSYNC_GUARDED_BY(mu_) is only touched with mu_ held, and that a function declared
// LIPSYNC_REQUIRES(mu_) is only called so. libstdc++'s own types carry no such attributes, which
// is why the project locks through these. With GCC the attributes are empty and each type is the
// std one it wraps, at no cost.
//
//   class Counter {
//    public:
//     void add(int n) LIPSYNC_EXCLUDES(mu_) {
//       core::MutexLock lock(mu_);
//       total_ += n;
//       changed_.notify_all();
//     }
//     void wait_for(int n) LIPSYNC_EXCLUDES(mu_) {
//       core::MutexLock lock(mu_);
//       changed_.wait(lock, [&]() LIPSYNC_REQUIRES(mu_) { return total_ >= n; });
//     }
//    private:
//     core::Mutex mu_;
//     core::CondVar changed_;
//     int total_ LIPSYNC_GUARDED_BY(mu_) = 0;
//   };
//
// A wait's predicate runs with the lock held, but the analysis sees a lambda as a function of its
// own: the lambda says LIPSYNC_REQUIRES(mu_), and CondVar (whose body is not analysed) calls it.
//
// Thread contract: Mutex and CondVar are shared by the threads that use them; a MutexLock belongs
// to the thread that made it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#if defined(__clang__)
#define LIPSYNC_THREAD_ATTRIBUTE(x) __attribute__((x))
#else
#define LIPSYNC_THREAD_ATTRIBUTE(x)
#endif

// A type that is a lock (the analysis calls it a capability).
#define LIPSYNC_CAPABILITY(name) LIPSYNC_THREAD_ATTRIBUTE(capability(name))
// A type whose object holds a lock from its construction to its destruction.
#define LIPSYNC_SCOPED_CAPABILITY LIPSYNC_THREAD_ATTRIBUTE(scoped_lockable)
// A member read or written only with the lock held.
#define LIPSYNC_GUARDED_BY(x) LIPSYNC_THREAD_ATTRIBUTE(guarded_by(x))
// A function called only with the locks held (it neither takes nor releases them).
#define LIPSYNC_REQUIRES(...) LIPSYNC_THREAD_ATTRIBUTE(requires_capability(__VA_ARGS__))
// A function called only without the locks held (it takes them itself).
#define LIPSYNC_EXCLUDES(...) LIPSYNC_THREAD_ATTRIBUTE(locks_excluded(__VA_ARGS__))
// A function that takes the lock (or, with no argument, the lock of its object) and returns
// holding it.
#define LIPSYNC_ACQUIRE(...) LIPSYNC_THREAD_ATTRIBUTE(acquire_capability(__VA_ARGS__))
// A function that releases the lock it was called holding.
#define LIPSYNC_RELEASE(...) LIPSYNC_THREAD_ATTRIBUTE(release_capability(__VA_ARGS__))
// A function after which the analysis takes the lock as held (it checks nothing itself).
#define LIPSYNC_ASSERT_HELD() LIPSYNC_THREAD_ATTRIBUTE(assert_capability(this))
// A function the analysis skips: used only where the locking is right and cannot be expressed.
#define LIPSYNC_NO_THREAD_SAFETY_ANALYSIS LIPSYNC_THREAD_ATTRIBUTE(no_thread_safety_analysis)

namespace lipsync::core {

class CondVar;

// std::mutex, annotated.
class LIPSYNC_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() LIPSYNC_ACQUIRE() { mu_.lock(); }
  void unlock() LIPSYNC_RELEASE() { mu_.unlock(); }
  // Tells the analysis the calling thread holds this mutex (checks nothing at run time): for a
  // callback that a library makes from inside a call the caller made holding it.
  void assert_held() const LIPSYNC_ASSERT_HELD() {}

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds a Mutex for its lifetime; unlock() and lock() release it for a while and take it again
// (the destructor releases it only when held).
class LIPSYNC_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) LIPSYNC_ACQUIRE(mu) : lock_(mu.mu_) {}
  ~MutexLock() LIPSYNC_RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void unlock() LIPSYNC_RELEASE() { lock_.unlock(); }
  void lock() LIPSYNC_ACQUIRE() { lock_.lock(); }

 private:
  friend class CondVar;
  std::unique_lock<std::mutex> lock_;
};

// std::condition_variable over a MutexLock. Each wait releases the lock while it sleeps and holds
// it again when it returns; a predicate runs with the lock held.
class CondVar {
 public:
  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }

  void wait(MutexLock& lock) { cv_.wait(lock.lock_); }

  template <class Predicate>
  void wait(MutexLock& lock, Predicate done) LIPSYNC_NO_THREAD_SAFETY_ANALYSIS {
    cv_.wait(lock.lock_, std::move(done));
  }

  // std::cv_status::timeout when `deadline` passed first.
  template <class Clock, class Duration>
  std::cv_status wait_until(MutexLock& lock,
                            const std::chrono::time_point<Clock, Duration>& deadline) {
    return cv_.wait_until(lock.lock_, deadline);
  }

  // done() at the end: false when `deadline` passed first.
  template <class Clock, class Duration, class Predicate>
  bool wait_until(MutexLock& lock, const std::chrono::time_point<Clock, Duration>& deadline,
                  Predicate done) LIPSYNC_NO_THREAD_SAFETY_ANALYSIS {
    return cv_.wait_until(lock.lock_, deadline, std::move(done));
  }

  template <class Rep, class Period>
  std::cv_status wait_for(MutexLock& lock, const std::chrono::duration<Rep, Period>& timeout) {
    return cv_.wait_for(lock.lock_, timeout);
  }

  // done() at the end: false when `timeout` passed first.
  template <class Rep, class Period, class Predicate>
  bool wait_for(MutexLock& lock, const std::chrono::duration<Rep, Period>& timeout,
                Predicate done) LIPSYNC_NO_THREAD_SAFETY_ANALYSIS {
    return cv_.wait_for(lock.lock_, timeout, std::move(done));
  }

 private:
  std::condition_variable cv_;
};

}  // namespace lipsync::core
