// StreamService: lipsync.v1.LipSync/Stream. A client sends a config, then audio chunks of any
// size, then an end marker; the server returns each frame (index, time, bytes) as soon as the
// audio it depends on has arrived (REFERENCE.md §4), in order, and the tail after the end. Frame
// jobs go through the model's Scheduler with every other session's; a cancelled call drops its
// queued jobs at once. Reading waits for each chunk to be processed, so a client is paced by
// the server.
// Thread contract: gRPC calls the reactor from its threads; each session's audio work runs in
// order on the request workers.
#pragma once

#include <atomic>

#include "core/worker_pool.h"
#include "lipsync/v1/lipsync.grpc.pb.h"
#include "server/registry.h"
#include "server/server_metrics.h"
#include "server/server_options.h"

namespace lipsync::server {

class StreamService final : public lipsync::v1::LipSync::CallbackService {
 public:
  StreamService(Registry& registry, core::WorkerPool& workers, const ServerOptions& options,
                ServerMetrics& metrics);

  grpc::ServerBidiReactor<lipsync::v1::StreamRequest, lipsync::v1::StreamResponse>* Stream(
      grpc::CallbackServerContext* context) override;

  int active_streams() const { return active_.load(); }

 private:
  Registry& registry_;
  core::WorkerPool& workers_;
  const ServerOptions options_;
  ServerMetrics& metrics_;
  std::atomic<int> active_{0};
};

}  // namespace lipsync::server
