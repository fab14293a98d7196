#include "avatar/template_walk.h"

#include "core/check.h"

namespace lipsync::avatar {

bool walk_is_frozen(int n, int start) {
  return n >= 3 && start >= 1 && start <= n - 2;
}

int template_frame_for(int output_frame, int n, int start) {
  LIPSYNC_CHECK(n >= 1 && start >= 0 && start < n && output_frame >= 0);
  if (n == 1) return 0;
  if (walk_is_frozen(n, start)) return start;
  // From 0 or n-1 the walk is a triangle wave of period 2 (n - 1); output frame i sits at
  // position start + i + 1 on it.
  const long long period = 2LL * (n - 1);
  const long long m = (static_cast<long long>(start) + output_frame + 1) % period;
  return static_cast<int>(m <= n - 1 ? m : period - m);
}

}  // namespace lipsync::avatar
