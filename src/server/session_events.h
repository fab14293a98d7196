// SessionEvents: one live session's events as every client sees them (issue 25 §2): numbered
// from 1 (`seq`, session-wide), written once as one JSON object each, the last kBacklog kept for
// a client that resumes (SSE's Last-Event-ID), and handed to each subscriber as they happen, in
// order. After session_ended nothing more is published.
//
// The JSON of each type (every one has "type" and "seq"; pts_ms is the tick's, 40 ms a tick):
//   utterance_queued   {utterance, seconds_received}
//   playback_started   {utterance, pts_ms}
//   playback_finished  {utterance, playback_position_s, interrupted, pts_ms}
//   underrun           {utterance, ms, pts_ms}       (pts_ms: where the silence began)
//   state              {state: idle|speaking|fading, pts_ms}
//   viewer_joined, viewer_left  {viewers}
//   session_ended      {reason: deleted|expired|shutdown|error|closed, message}
// Every playback_started has its playback_finished, also when the session ends while that
// utterance plays (then interrupted, before session_ended).
// Thread contract: any thread. Subscribers are called under the log's lock, in seq order: they
// must be quick (queue the text and return) and must not call back into the log.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>

#include "core/mutex.h"
#include "pipeline/live_session.h"

namespace lipsync::server {

// The event's "type" name.
std::string_view event_type_name(pipeline::LiveEvent::Type type);

class SessionEvents {
 public:
  static constexpr std::size_t kBacklog = 256;
  using Subscriber = std::function<void(const pipeline::LiveEvent&)>;

  // Numbers `e`, writes its JSON (both into `e`), keeps it and hands it to the subscribers.
  // Ignored once session_ended is published (e.seq stays 0).
  void publish(pipeline::LiveEvent& e);
  // Hands the kept events after `after_seq` to `subscriber`, then every new one; returns its
  // id. An `after_seq` older than the backlog gets the whole backlog.
  int subscribe(std::int64_t after_seq, Subscriber subscriber);
  void unsubscribe(int id);
  int subscribers() const;
  bool ended() const;

 private:
  mutable core::Mutex mutex_;
  std::int64_t seq_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  std::deque<pipeline::LiveEvent> kept_ LIPSYNC_GUARDED_BY(mutex_);
  std::map<int, Subscriber> subscribers_ LIPSYNC_GUARDED_BY(mutex_);
  int next_id_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  bool ended_ LIPSYNC_GUARDED_BY(mutex_) = false;
};

}  // namespace lipsync::server
