// ServerOptions: how `lipsync serve` listens and admits work (the `server:` config section).
// Thread contract: plain value; validate() before use.
#pragma once

#include <string>

namespace lipsync::server {

struct ServerOptions {
  std::string grpc_address = "127.0.0.1:50051";  // server.grpc (--grpc)
  std::string http_address = "127.0.0.1:8080";   // server.http (--http); "" = off
  int max_message_mb = 64;         // server.max_message_mb: largest gRPC message (1..2047)
  int max_request_frames = 250;    // server.max_request_frames: batch_size limit (1..10000)
  int max_inflight_requests = 64;  // server.max_inflight_requests: then RESOURCE_EXHAUSTED
  int workers = 0;                 // server.workers: request threads (0 = hardware threads)
  int arena_threads = 0;           // server.arena_threads: CPU task arena (0 = hardware threads)
  int jpeg_quality = 75;           // render.jpeg_quality
  int shutdown_grace_s = 5;        // server.shutdown_grace_s: in-flight work gets this long
  std::string log_level = "info";  // log_level: trace, debug, info, warn, error, off
  void validate() const;
  int resolved_workers() const;
};

}  // namespace lipsync::server
