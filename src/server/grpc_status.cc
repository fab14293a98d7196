#include "server/grpc_status.h"

namespace lipsync::server {

grpc::Status to_status(const Error& error) {
  switch (error.code()) {
    case Error::Code::kInvalidInput:
      return {grpc::StatusCode::INVALID_ARGUMENT, error.message()};
    case Error::Code::kNotFound:
      return {grpc::StatusCode::NOT_FOUND, error.message()};
    case Error::Code::kResourceExhausted:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, error.message()};
    case Error::Code::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, error.message()};
    case Error::Code::kConflict:
      return {grpc::StatusCode::ABORTED, error.message()};
    case Error::Code::kInternal:
      break;
  }
  return {grpc::StatusCode::INTERNAL, error.message()};
}

std::string status_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      break;
  }
  return "UNKNOWN_" + std::to_string(static_cast<int>(code));
}

}  // namespace lipsync::server
