#include "server/session_events.h"

#include <nlohmann/json.hpp>

#include "audio/video_frames.h"
#include "core/json_text.h"
#include "core/mutex.h"

namespace lipsync::server {

using nlohmann::json;

std::string_view event_type_name(pipeline::LiveEvent::Type type) {
  using Type = pipeline::LiveEvent::Type;
  switch (type) {
    case Type::kUtteranceQueued:
      return "utterance_queued";
    case Type::kPlaybackStarted:
      return "playback_started";
    case Type::kPlaybackFinished:
      return "playback_finished";
    case Type::kUnderrun:
      return "underrun";
    case Type::kState:
      return "state";
    case Type::kViewerJoined:
      return "viewer_joined";
    case Type::kViewerLeft:
      return "viewer_left";
    case Type::kSessionEnded:
      return "session_ended";
  }
  return "state";
}

namespace {

std::string event_json(const pipeline::LiveEvent& e) {
  using Type = pipeline::LiveEvent::Type;
  json j = {{"type", event_type_name(e.type)}, {"seq", e.seq}};
  const std::int64_t pts_ms = audio::frame_pts_ms(e.tick);
  const double seconds = static_cast<double>(e.samples) / audio::kSampleRateHz;
  switch (e.type) {
    case Type::kUtteranceQueued:
      j["utterance"] = e.utterance;
      j["seconds_received"] = seconds;
      break;
    case Type::kPlaybackStarted:
      j["utterance"] = e.utterance;
      j["pts_ms"] = pts_ms;
      break;
    case Type::kPlaybackFinished:
      j["utterance"] = e.utterance;
      j["playback_position_s"] = seconds;
      j["interrupted"] = e.interrupted;
      j["pts_ms"] = pts_ms;
      break;
    case Type::kUnderrun:
      j["utterance"] = e.utterance;
      j["ms"] = e.samples * 1000 / audio::kSampleRateHz;
      j["pts_ms"] = pts_ms;
      break;
    case Type::kState:
      j["state"] = pipeline::to_string(e.state);
      j["pts_ms"] = pts_ms;
      break;
    case Type::kViewerJoined:
    case Type::kViewerLeft:
      j["viewers"] = e.count;
      break;
    case Type::kSessionEnded:
      j["reason"] = e.reason;
      if (!e.message.empty()) j["message"] = e.message;
      break;
  }
  return core::json_text(j);
}

}  // namespace

void SessionEvents::publish(pipeline::LiveEvent& e) {
  core::MutexLock lock(mutex_);
  if (ended_) return;
  e.seq = ++seq_;
  e.json = event_json(e);
  ended_ = e.type == pipeline::LiveEvent::Type::kSessionEnded;
  kept_.push_back(e);
  if (kept_.size() > kBacklog) kept_.pop_front();
  for (auto& [id, subscriber] : subscribers_) subscriber(e);
}

int SessionEvents::subscribe(std::int64_t after_seq, Subscriber subscriber) {
  core::MutexLock lock(mutex_);
  for (const auto& e : kept_) {
    if (e.seq > after_seq) subscriber(e);
  }
  const int id = next_id_++;
  if (!ended_) subscribers_.emplace(id, std::move(subscriber));
  return id;
}

void SessionEvents::unsubscribe(int id) {
  core::MutexLock lock(mutex_);
  subscribers_.erase(id);
}

int SessionEvents::subscribers() const {
  core::MutexLock lock(mutex_);
  return static_cast<int>(subscribers_.size());
}

bool SessionEvents::ended() const {
  core::MutexLock lock(mutex_);
  return ended_;
}

}  // namespace lipsync::server
