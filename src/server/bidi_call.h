// BidiReactor and start_bidi_call: the plumbing both bidirectional calls (Stream, Live) share.
// The reactor only forwards gRPC's callbacks to its call object; the call object owns the
// state and reaches the reactor under its own lock, never after OnDone (detach()).
//
// A Call provides: attach(BidiReactor<Call>*, call id), begin(), end(status), read_done(ok,
// bytes), write_done(ok), cancelled(), detach(); and a constructor (context, active counter).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "server/service_context.h"

namespace lipsync::server {

template <class Call>
class BidiReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit BidiReactor(std::shared_ptr<Call> call) : call_(std::move(call)) {}
  void OnReadDone(bool ok) override { call_->read_done(ok, std::move(read_)); }
  void OnWriteDone(bool ok) override { call_->write_done(ok); }
  void OnCancel() override { call_->cancelled(); }
  void OnDone() override {
    call_->detach();
    delete this;
  }

  void read() { StartRead(&read_); }
  void write(const grpc::ByteBuffer* message) { StartWrite(message); }
  void finish(const grpc::Status& status) { Finish(status); }

 private:
  std::shared_ptr<Call> call_;
  grpc::ByteBuffer read_;
};

// Starts one call: registers it for shutdown, then admits it (at most `limit` at once, counted
// in `active`; the call decrements it when it ends) or ends it with UNAVAILABLE (shutting down)
// or RESOURCE_EXHAUSTED naming `what` and `limit_key`.
template <class Call>
grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* start_bidi_call(
    const ServiceContext& context, std::atomic<int>& active, int limit, const std::string& what,
    const std::string& limit_key) {
  auto call = std::make_shared<Call>(context, active);
  auto* reactor = new BidiReactor<Call>(call);
  ++active;
  const std::weak_ptr<Call> weak = call;
  const std::uint64_t id = context.calls->add([weak](const grpc::Status& status) {
    if (auto c = weak.lock()) c->end(status);
  });
  call->attach(reactor, id);
  if (id == 0) {
    call->end(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
  } else if (active.load() > limit) {
    call->end(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "too many " + what + " at once (" + limit_key + " = " +
                               std::to_string(limit) + "); retry later"));
  } else {
    call->begin();
  }
  return reactor;
}

}  // namespace lipsync::server
