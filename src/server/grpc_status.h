// The one mapping of lipsync errors to gRPC statuses, and gRPC codes to their names (the
// `code` label of lipsync_requests_total and the load test's report).
// Thread contract: stateless functions.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "core/error.h"

namespace lipsync::server {

// INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, UNAVAILABLE or INTERNAL, with the message.
grpc::Status to_status(const Error& error);
// "OK", "CANCELLED", "INVALID_ARGUMENT", ... ("UNKNOWN_<n>" for a code gRPC does not define).
std::string status_code_name(grpc::StatusCode code);

}  // namespace lipsync::server
