// LiveService: lipsync.v1.LipSync/Live. A client sends a LiveConfig, then any mix of speech bytes,
// segment_end and interrupt; the server sends one LiveFrame per 40 ms tick of the session's clock
// for as long as the session lives: idle, speaking what it was given, fading back after an
// interrupt, each frame with its own 640 samples (pipeline::LiveSession). Half-closing ends the
// session once the queued speech has played.
//
// Flow control: speech beyond live.max_buffered_s is not read until the session has played some
// of it. A client that reads slowly still gets one frame per tick: once more than a second of
// frames waits for it, the frames go out without their picture, flagged late (show the last one),
// but with their samples, so the timeline never shifts and the audio never stops.
// Every session is in the server's SessionHub (the HTTP API sees it by the id in the call's first
// frame); LiveConfig.session_id attaches the call to a session that exists instead.
// Events (issue 25 §2): each frame carries the events of its tick (and the viewer_joined and
// viewer_left published since the last one) in LiveFrame.events, numbered like every other
// transport's; the last one, session_ended, has no tick: it is the call's trailing metadata
// `lipsync-session-ended` (its JSON).
// Admission: live.max_sessions (calls, and sessions of all kinds), then RESOURCE_EXHAUSTED.
// Thread contract: gRPC calls the reactors from its threads; each session's speech decoding runs
// in order on the request workers; frames come from the ticker thread.
#pragma once

#include <atomic>
#include <string_view>

#include "lipsync/v1/lipsync.grpc.pb.h"
#include "server/service_context.h"

namespace lipsync::server {

// The trailing metadata key of a Live call whose session ended: the session_ended event's JSON.
inline constexpr std::string_view kSessionEndedTrailer = "lipsync-session-ended";

class LiveService {
 public:
  explicit LiveService(const ServiceContext& context);

  // A reactor for one new Live call.
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* start(
      grpc::CallbackServerContext* context);

  // Sessions now, gRPC and HTTP (the context's shared count).
  int active_sessions() const { return context_.live_sessions->load(); }
  int active_calls() const { return calls_.load(); }

 private:
  const ServiceContext context_;
  std::atomic<int> calls_{0};
};

}  // namespace lipsync::server
