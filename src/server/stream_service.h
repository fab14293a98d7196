// StreamService: lipsync.v1.LipSync/Stream. A client sends a config, then audio chunks of any
// size, then an end marker; the server returns each frame (index, time, bytes) as soon as the
// audio it depends on has arrived (REFERENCE.md §4), in order, and the tail after the end. Each
// stream drives one FrameProducer through the model's shared Scheduler.
//
// Flow control: a stream reads its next message only when its producer has taken in the audio so
// far and has room in its window (pipeline.window_frames frames between submission and a
// completed write). A client that sends faster than the server renders is slowed down by gRPC's
// own flow control, and one that never reads holds at most a window of frames; neither is ever
// failed for it. RESOURCE_EXHAUSTED is only for admission (server.max_streams) and message size.
// A cancelled call drops its queued jobs at once.
// Thread contract: gRPC calls the reactors from its threads; each stream's audio work runs in
// order on the request workers.
#pragma once

#include <atomic>

#include "lipsync/v1/lipsync.grpc.pb.h"
#include "server/service_context.h"

namespace lipsync::server {

// Served raw (bytes in, bytes out; see LipSyncService): a message that is not a valid
// StreamRequest ends the stream with INVALID_ARGUMENT saying so, where gRPC's typed reader would
// just report the end of the stream.
class StreamService {
 public:
  explicit StreamService(const ServiceContext& context);

  // A reactor for one new Stream call.
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* start(
      grpc::CallbackServerContext* context);

  int active_streams() const { return active_.load(); }

 private:
  const ServiceContext context_;
  std::atomic<int> active_{0};
};

}  // namespace lipsync::server
