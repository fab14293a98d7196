// MonolithicService: the old server's gRPC API (proto/monolithic.proto), wire-compatible, on the
// callback API. Handlers validate on the RPC thread and hand the work to the request workers
// and the model's Scheduler; they never run a model on the RPC thread.
// Thread contract: gRPC calls the handlers from its own threads at once.
#pragma once

#include <atomic>
#include <memory>

#include "core/worker_pool.h"
#include "monolithic.grpc.pb.h"
#include "server/registry.h"
#include "server/server_metrics.h"
#include "server/server_options.h"

namespace lipsync::server {

class MonolithicService final : public monolithic::MonolithicService::CallbackService {
 public:
  MonolithicService(Registry& registry, core::WorkerPool& workers, const ServerOptions& options,
                    ServerMetrics& metrics);

  grpc::ServerUnaryReactor* InferBatchComposite(
      grpc::CallbackServerContext* context, const monolithic::CompositeBatchRequest* request,
      monolithic::CompositeBatchResponse* response) override;
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

 private:
  Registry& registry_;
  core::WorkerPool& workers_;
  const ServerOptions options_;
  ServerMetrics& metrics_;
  std::atomic<int> inflight_{0};
};

// The gRPC status for an Error code (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED,
// UNAVAILABLE, INTERNAL).
grpc::Status to_status(const Error& error);

}  // namespace lipsync::server
