// LipSyncService: the gRPC service lipsync.v1.LipSync, both of its methods served raw (bytes in,
// bytes out, parsed by the handlers so that undecodable messages get INVALID_ARGUMENT): Stream
// (StreamService) and Live (LiveService).
// Thread contract: gRPC calls it from its own threads at once.
#pragma once

#include "lipsync/v1/lipsync.grpc.pb.h"
#include "server/live_service.h"
#include "server/stream_service.h"

namespace lipsync::server {

using LipSyncBase = lipsync::v1::LipSync::WithRawCallbackMethod_Live<
    lipsync::v1::LipSync::WithRawCallbackMethod_Stream<lipsync::v1::LipSync::Service>>;

class LipSyncService final : public LipSyncBase {
 public:
  LipSyncService(StreamService& stream, LiveService& live) : stream_(stream), live_(live) {}
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext* context) override {
    return stream_.start(context);
  }
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Live(
      grpc::CallbackServerContext* context) override {
    return live_.start(context);
  }

 private:
  StreamService& stream_;
  LiveService& live_;
};

}  // namespace lipsync::server
