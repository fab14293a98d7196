#include "server/grpc_access_log.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>

#include "core/text.h"
#include "server/grpc_status.h"

namespace lipsync::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class AccessLogInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit AccessLogInterceptor(grpc::experimental::ServerRpcInfo* info)
      : info_(info), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
              .count();
      const std::string method = info_->method() != nullptr ? info_->method() : "?";
      const bool quiet =
          method.rfind("/grpc.health.", 0) == 0 || method.rfind("/grpc.reflection.", 0) == 0;
      const auto* context = info_->server_context();
      const std::string why =
          status.ok() ? std::string() : ": " + core::quote(status.error_message(), 200);
      spdlog::log(quiet ? spdlog::level::debug : spdlog::level::info, "grpc {} {} {:.1f} ms {}{}",
                  method, status_code_name(status.error_code()), ms,
                  context != nullptr ? context->peer() : std::string("?"), why);
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* info_;
  const std::chrono::steady_clock::time_point start_;
};

class AccessLogFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new AccessLogInterceptor(info);
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> grpc_access_log() {
  return std::make_unique<AccessLogFactory>();
}

}  // namespace lipsync::server
