// Invariant checks. A failed check is a bug inside lipsync: it throws Error::Code::kInternal
// with the expression, both values and the source location. Never use these for bad input.
// Thread contract: stateless.
#pragma once

#include <sstream>
#include <string>

#include "core/error.h"

namespace lipsync::detail {

[[noreturn]] void fail_check(const char* file, int line, const std::string& what);

template <class A, class B>
[[noreturn]] void fail_check_op(const char* file, int line, const char* expr, const A& a,
                                const B& b) {
  std::ostringstream os;
  os << expr << " (" << a << " vs " << b << ")";
  fail_check(file, line, os.str());
}

}  // namespace lipsync::detail

#define LIPSYNC_CHECK(cond)                                                \
  do {                                                                     \
    if (!(cond)) ::lipsync::detail::fail_check(__FILE__, __LINE__, #cond); \
  } while (false)

#define LIPSYNC_CHECK_OP_(a, b, op)                                                             \
  do {                                                                                          \
    const auto& lipsync_check_a_ = (a);                                                         \
    const auto& lipsync_check_b_ = (b);                                                         \
    if (!(lipsync_check_a_ op lipsync_check_b_))                                                \
      ::lipsync::detail::fail_check_op(__FILE__, __LINE__, #a " " #op " " #b, lipsync_check_a_, \
                                       lipsync_check_b_);                                       \
  } while (false)

#define LIPSYNC_CHECK_EQ(a, b) LIPSYNC_CHECK_OP_(a, b, ==)
#define LIPSYNC_CHECK_LE(a, b) LIPSYNC_CHECK_OP_(a, b, <=)
#define LIPSYNC_CHECK_LT(a, b) LIPSYNC_CHECK_OP_(a, b, <)
