// GrpcAccessLog: one access-log line per gRPC call, as the HTTP server writes one per request:
// the method, its status code, its duration and the peer (info; the health checks at debug).
// Metadata (the token) is never logged. A server interceptor, so that every service's calls are
// covered in one place.
// Thread contract: gRPC calls the factory and the interceptors from its own threads.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>

namespace lipsync::server {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> grpc_access_log();

}  // namespace lipsync::server
