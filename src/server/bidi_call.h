// BidiReactor, BidiCall and start_bidi_call: the plumbing both bidirectional calls (Stream,
// Live) share. The reactor only forwards gRPC's callbacks to its call object; the call object
// owns the state and reaches the reactor under its own lock, never after OnDone (detach()).
//
// A call derives from BidiCall<Call, Request> and provides (befriending the base):
//   static constexpr const char* kMethod;      // for the metrics
//   static constexpr CallTracker::Kind kKind;  // a request's call, or a session's (a drain)
//   void handle(const Request&);               // on the strand; throw Error to end the call
//   void half_closed();                        // on the strand: the client closed its side
//   void drop();                               // the call ends: cancel its work (any thread)
//   void on_written() {}                       // optional: a message went out
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "core/strand.h"
#include "server/grpc_status.h"
#include "server/service_context.h"

namespace lipsync::server {

template <class Call>
class BidiReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  BidiReactor(std::shared_ptr<Call> call, grpc::CallbackServerContext* rpc)
      : call_(std::move(call)), rpc_(rpc) {}
  void OnReadDone(bool ok) override { call_->read_done(ok, std::move(read_)); }
  void OnWriteDone(bool ok) override { call_->write_done(ok); }
  void OnCancel() override { call_->cancelled(); }
  void OnDone() override {
    call_->detach();
    delete this;
  }

  void read() { StartRead(&read_); }
  void write(const grpc::ByteBuffer* message) { StartWrite(message); }
  void finish(const grpc::Status& status,
              const std::vector<std::pair<std::string, std::string>>& trailers) {
    for (const auto& [key, value] : trailers) rpc_->AddTrailingMetadata(key, value);
    Finish(status);
  }

 private:
  std::shared_ptr<Call> call_;
  grpc::CallbackServerContext* const rpc_;  // valid until OnDone
  grpc::ByteBuffer read_;
};

template <class Call, class Request>
class BidiCall : public std::enable_shared_from_this<Call> {
 public:
  BidiCall(const ServiceContext& ctx, std::atomic<int>& active)
      : ctx_(ctx), strand_(*ctx.workers), active_(active) {}

  void attach(BidiReactor<Call>* reactor, std::uint64_t call_id) {
    core::MutexLock lock(mutex_);
    reactor_ = reactor;
    call_id_ = call_id;
  }
  void detach() {
    {
      core::MutexLock lock(mutex_);
      reactor_ = nullptr;
      ended_ = true;
    }
    call().drop();
    --active_;
  }

  // Reads the config message.
  void begin() { request_read(); }

  void read_done(bool ok, grpc::ByteBuffer bytes) {
    int number = 0;
    {
      core::MutexLock lock(mutex_);
      reading_ = false;
      number = ++messages_read_;
    }
    auto self = this->shared_from_this();
    if (!ok) {  // the client closed its side (or went away)
      strand_.post([self] { self->run([&] { self->half_closed(); }); });
      return;
    }
    auto message = std::make_shared<Request>();
    if (!grpc::SerializationTraits<Request>::Deserialize(&bytes, message.get()).ok()) {
      end(to_status(Error::invalid_input("message " + std::to_string(number) + " is not a valid " +
                                         Request::descriptor()->full_name() +
                                         " (protobuf parsing failed)")));
      return;
    }
    strand_.post([self, message] { self->run([&] { self->handle(*message); }); });
  }

  void write_done(bool ok) {
    bool finish = false;
    grpc::Status status;
    {
      core::MutexLock lock(mutex_);
      writing_ = false;
      if (ended_) return;
      if (ok) {
        outbox_.pop_front();
        write_next_locked();
        finish = outbox_.empty() && !writing_ && done_;
        status = final_status_;
      }
    }
    if (!ok) {
      end(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    call().on_written();
    if (finish) end(status);
  }

  void cancelled() { end(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client")); }

  // Ends the call once: drops its work, releases the lease, sends the status.
  void end(const grpc::Status& status) {
    Registry::Lease lease;
    BidiReactor<Call>* reactor = nullptr;
    std::uint64_t call_id = 0;
    std::vector<std::pair<std::string, std::string>> trailers;
    {
      core::MutexLock lock(mutex_);
      if (ended_ || reactor_ == nullptr) return;
      ended_ = true;
      reactor = reactor_;
      call_id = call_id_;
      lease = std::move(lease_);
      trailers.swap(trailers_);
    }
    strand_.close();
    call().drop();
    lease.model.reset();
    ctx_.metrics->count_request(Call::kMethod, status_code_name(status.error_code()));
    ctx_.calls->remove(call_id);
    reactor->finish(status, trailers);
  }

 protected:
  void on_written() {}

  // Runs strand work, turning its errors into the call's status.
  template <class F>
  void run(F&& work) {
    try {
      work();
    } catch (const Error& e) {
      end(to_status(e));
    } catch (const std::exception& e) {
      end(to_status(Error::internal(e.what())));
    }
  }

  // Asks for the client's next message (unless one is on its way or the reading is over).
  void request_read() {
    core::MutexLock lock(mutex_);
    if (ended_ || reactor_ == nullptr || reading_ || no_more_reads_) return;
    reading_ = true;
    reactor_->read();
  }
  // The client has nothing more to say; false when that was known already.
  bool stop_reading() {
    core::MutexLock lock(mutex_);
    if (no_more_reads_) return false;
    no_more_reads_ = true;
    return true;
  }

  // Queues a message for the client, in order.
  void send(grpc::ByteBuffer bytes) {
    core::MutexLock lock(mutex_);
    if (ended_) return;
    outbox_.push_back(std::move(bytes));
    write_next_locked();
  }
  // Messages queued and not yet written.
  std::size_t queued() {
    core::MutexLock lock(mutex_);
    return outbox_.size();
  }
  // Sends `key: value` in the call's trailing metadata when it ends.
  void add_trailer(std::string key, std::string value) {
    core::MutexLock lock(mutex_);
    trailers_.emplace_back(std::move(key), std::move(value));
  }
  // Ends the call with `status` once everything queued is written.
  void finish_when_written(const grpc::Status& status) {
    bool finish = false;
    {
      core::MutexLock lock(mutex_);
      done_ = true;
      final_status_ = status;
      finish = outbox_.empty() && !writing_;
    }
    if (finish) end(status);
  }

  const ServiceContext& ctx_;
  core::Strand strand_;
  core::Mutex mutex_;
  bool ended_ LIPSYNC_GUARDED_BY(mutex_) = false;     // Finish was called, or OnDone came
  Registry::Lease lease_ LIPSYNC_GUARDED_BY(mutex_);  // the model the call uses

 private:
  Call& call() { return static_cast<Call&>(*this); }

  void write_next_locked() LIPSYNC_REQUIRES(mutex_) {
    if (ended_ || writing_ || outbox_.empty() || reactor_ == nullptr) return;
    writing_ = true;
    reactor_->write(&outbox_.front());
  }

  std::atomic<int>& active_;
  BidiReactor<Call>* reactor_ LIPSYNC_GUARDED_BY(mutex_) = nullptr;  // null after OnDone
  std::uint64_t call_id_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  bool reading_ LIPSYNC_GUARDED_BY(mutex_) = false;  // a read is in flight
  // The end marker came, or the client closed.
  bool no_more_reads_ LIPSYNC_GUARDED_BY(mutex_) = false;
  bool writing_ LIPSYNC_GUARDED_BY(mutex_) = false;  // a write is in flight
  bool done_ LIPSYNC_GUARDED_BY(mutex_) = false;     // everything is queued; then final_status_
  grpc::Status final_status_ LIPSYNC_GUARDED_BY(mutex_);
  int messages_read_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  // Messages waiting to be written, in order.
  std::deque<grpc::ByteBuffer> outbox_ LIPSYNC_GUARDED_BY(mutex_);
  std::vector<std::pair<std::string, std::string>> trailers_ LIPSYNC_GUARDED_BY(mutex_);
};

// Whether the call may run: no server.api_token, or the call's `authorization` metadata has it.
inline bool authorized(const ServiceContext& context, const grpc::CallbackServerContext& rpc) {
  if (context.server.api_token.empty()) return true;
  const auto& metadata = rpc.client_metadata();
  const auto it = metadata.find("authorization");
  return it != metadata.end() &&
         bearer_token_matches(std::string_view(it->second.data(), it->second.size()),
                              context.server.api_token);
}

// Starts one call: registers it for shutdown, then admits it (at most `limit` at once, counted
// in `active`; the call decrements it when it ends) or ends it with UNAVAILABLE (shutting down),
// UNAUTHENTICATED (server.api_token is set and the call's metadata has no `authorization:
// Bearer <token>`) or RESOURCE_EXHAUSTED naming `what` and `limit_key`.
template <class Call>
grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* start_bidi_call(
    const ServiceContext& context, grpc::CallbackServerContext& rpc, std::atomic<int>& active,
    int limit, const std::string& what, const std::string& limit_key) {
  auto call = std::make_shared<Call>(context, active);
  auto* reactor = new BidiReactor<Call>(call, &rpc);
  ++active;
  const std::weak_ptr<Call> weak = call;
  const std::uint64_t id = context.calls->add(
      [weak](const grpc::Status& status) {
        if (auto c = weak.lock()) c->end(status);
      },
      Call::kKind);
  call->attach(reactor, id);
  if (id == 0) {
    call->end(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
  } else if (!authorized(context, rpc)) {
    call->end(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                           "lipsync.v1 calls need `authorization: Bearer <token>` metadata "
                           "(server.api_token)"));
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
