// MonolithicService: the old server's gRPC API (proto/monolithic.proto), wire-compatible, on the
// callback API. InferBatchComposite validates on the RPC thread, then a request worker decodes
// the audio and computes the clip's features, and a FrameProducer makes the frames through the
// model's Scheduler. A call whose client cancels or passes its deadline drops its queued frames
// at once and is counted under that code; at shutdown the server ends the calls still running
// after the grace period (UNAVAILABLE).
// Thread contract: gRPC calls the handlers from its own threads at once.
#pragma once

#include <atomic>

#include "monolithic.grpc.pb.h"
#include "server/service_context.h"

namespace lipsync::server {

// InferBatchComposite is served raw (bytes in, bytes out) so that a request that is not a valid
// protobuf gets INVALID_ARGUMENT with a message; gRPC's own handler answers UNIMPLEMENTED, empty.
using MonolithicBase = monolithic::MonolithicService::WithRawCallbackMethod_InferBatchComposite<
    monolithic::MonolithicService::CallbackService>;

class MonolithicService final : public MonolithicBase {
 public:
  explicit MonolithicService(const ServiceContext& context);

  using MonolithicBase::InferBatchComposite;
  grpc::ServerUnaryReactor* InferBatchComposite(grpc::CallbackServerContext* context,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const monolithic::ListModelsRequest* request,
                                       monolithic::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context,
                                      const monolithic::LoadModelRequest* request,
                                      monolithic::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* context,
                                        const monolithic::UnloadModelRequest* request,
                                        monolithic::UnloadModelResponse* response) override;
  grpc::ServerUnaryReactor* GetModelStats(grpc::CallbackServerContext* context,
                                          const monolithic::GetModelStatsRequest* request,
                                          monolithic::GetModelStatsResponse* response) override;
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* context,
                                   const monolithic::HealthRequest* request,
                                   monolithic::HealthResponse* response) override;

  int inflight() const { return inflight_.load(); }

 private:
  const ServiceContext context_;
  std::atomic<int> inflight_{0};
};

}  // namespace lipsync::server
