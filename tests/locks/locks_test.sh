#!/usr/bin/env bash
# core/mutex.h under clang -Wthread-safety: code that locks right compiles clean, and each way of
# touching guarded state without its lock is an error naming the mutex. (The `clang` preset
# builds the project so; this checks that the attributes behind it are really there.) Skips
# (exit 77) without clang 16: scripts/bootstrap --fuzz installs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cxx=${LIPSYNC_CLANG:-clang++-16}
command -v "$cxx" >/dev/null || { echo "locks: $cxx is not installed; skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() {  # check NAME BODY: a Counter with one method, BODY; prints the compiler's errors
  cat >"$tmp/$1.cc" <<CC
#include "core/mutex.h"
namespace lipsync {
class Counter {
 public:
  void add(int n) {
    core::MutexLock lock(mu_);
    total_ += n;
    changed_.notify_all();
  }
  void wait_for(int n) {
    core::MutexLock lock(mu_);
    changed_.wait(lock, [&]() LIPSYNC_REQUIRES(mu_) { return total_ >= n; });
    lock.unlock();
    lock.lock();
    total_ = 0;
  }
  void bump() LIPSYNC_REQUIRES(mu_) { ++total_; }
  void method();
 private:
  core::Mutex mu_;
  core::CondVar changed_;
  int total_ LIPSYNC_GUARDED_BY(mu_) = 0;
};
void Counter::method() { $2 }
}  // namespace lipsync
CC
  "$cxx" -std=c++20 -fsyntax-only -Wthread-safety -Werror -I"$root/src" "$tmp/$1.cc" 2>&1
}

out=$(check good 'core::MutexLock lock(mu_); bump(); int n = total_; (void)n;') && [[ -z $out ]] ||
  { echo "$out"; echo "FAIL: locking right did not compile clean" >&2; exit 1; }
# With GCC the attributes are empty: the same file compiles clean there too.
g++ -std=c++20 -fsyntax-only -Wall -Wextra -Werror -I"$root/src" "$tmp/good.cc" ||
  { echo "FAIL: g++ did not compile the good case" >&2; exit 1; }
fail=0
expect() {  # expect NAME BODY MESSAGE
  local out
  if out=$(check "$1" "$2"); then
    echo "FAIL: $1 compiled" >&2; fail=1
  elif ! grep -qF "$3" <<<"$out"; then
    echo "$out"; echo "FAIL: $1: expected '$3'" >&2; fail=1
  fi
}
expect read 'int n = total_; (void)n;' "reading variable 'total_' requires holding mutex 'mu_'"
expect write_after_unlock 'core::MutexLock lock(mu_); lock.unlock(); total_ = 1;' \
  "writing variable 'total_' requires holding mutex 'mu_' exclusively"
expect call 'bump();' "calling function 'bump' requires holding mutex 'mu_' exclusively"
expect predicate 'core::MutexLock lock(mu_); changed_.wait(lock, [&] { return total_ > 0; });' \
  "reading variable 'total_' requires holding mutex 'mu_'"
((fail == 0)) || exit 1
echo "locks: clang accepts the locking and names the mutex in each of four breaks"
