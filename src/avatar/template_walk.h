// The template frame of each output frame (REFERENCE.md §5): the reference's ping-pong walk over
// n template frames from a start frame K. Starting at 0 it goes 1, 2, ..., n-1, n-2, ..., 0, 1,
// ...; starting at n-1 it goes n-2, ..., 0, 1, ...; starting in between, the reference never moves
// (its step stays 0), and neither do we. With one template frame every output frame uses it.
// Thread contract: stateless functions.
#pragma once

namespace lipsync::avatar {

// Template frame of output frame i (0-based) for n template frames and start frame K.
// Requires: n >= 1, 0 <= start < n, i >= 0. O(1), for random access by streams and requests.
int template_frame_for(int output_frame, int template_frames, int start_frame);

// True when the walk from `start_frame` never moves (1 <= K <= n - 2, as in the reference).
bool walk_is_frozen(int template_frames, int start_frame);

}  // namespace lipsync::avatar
