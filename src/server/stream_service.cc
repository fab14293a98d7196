#include "server/stream_service.h"

#include "audio/video_frames.h"
#include "core/mutex.h"
#include "core/stopwatch.h"
#include "server/bidi_call.h"
#include "server/grpc_status.h"
#include "server/wire_audio.h"

namespace lipsync::server {
namespace {

using lipsync::v1::StreamConfig;
using lipsync::v1::StreamRequest;
using lipsync::v1::StreamResponse;

// One stream: the consumer of its producer, and everything queued work may touch. It outlives
// the reactor; the reactor is reached only under mutex_ and never after OnDone.
class StreamCall final : public BidiCall<StreamCall, StreamRequest>,
                         public pipeline::FrameConsumer {
 public:
  static constexpr const char* kMethod = "Stream";
  static constexpr CallTracker::Kind kKind = CallTracker::Kind::kRequest;
  using BidiCall::BidiCall;

  // FrameConsumer ----------------------------------------------------------------------------
  void on_frame(pipeline::ProducedFrame frame) override {
    StreamResponse response;
    response.set_index(frame.index);
    response.set_pts_ms(audio::frame_pts_ms(frame.index));
    response.set_width(ctx_avatar_width_);
    response.set_height(ctx_avatar_height_);
    if (format_ == StreamConfig::FORMAT_RAW) {
      response.set_frame(reinterpret_cast<const char*>(frame.image.data),
                         frame.image.total() * frame.image.elemSize());
    } else {
      response.set_frame(reinterpret_cast<const char*>(frame.encoded.data()), frame.encoded.size());
    }
    ctx_.metrics->add_frames(1);
    grpc::ByteBuffer bytes;
    bool own = false;
    if (!grpc::SerializationTraits<StreamResponse>::Serialize(response, &bytes, &own).ok()) {
      throw Error::internal("serialising frame " + std::to_string(frame.index));
    }
    send(std::move(bytes));
  }

  void on_audio_wanted() override { request_read(); }

  void on_finished() override { finish_when_written(grpc::Status::OK); }

  void on_failed(const Error& error) override { end(to_status(error)); }

 private:
  friend class BidiCall<StreamCall, StreamRequest>;

  // The call ends: the producer's queued work goes at once.
  void drop() {
    std::shared_ptr<pipeline::FrameProducer> producer;
    {
      core::MutexLock lock(mutex_);
      producer = std::move(producer_);
    }
    if (producer) producer->cancel();
  }

  // A frame reached the client: its window slot is free.
  void on_written() {
    if (auto p = producer()) p->release(1);
  }

  // The client closed its side: the end of the audio.
  void half_closed() { end_of_audio(); }

  // On the strand --------------------------------------------------------------------------
  void handle(const StreamRequest& message) {
    switch (message.message_case()) {
      case StreamRequest::kConfig:
        configure(message.config());
        return;  // the producer asks for audio when it is ready
      case StreamRequest::kAudio:
        if (!configured_) throw Error::invalid_input("audio before the config message");
        add_audio(message.audio());
        return;
      case StreamRequest::kEnd:
        end_of_audio();
        return;
      default:
        throw Error::invalid_input("an empty StreamRequest (expected config, audio or end)");
    }
  }

  std::shared_ptr<pipeline::FrameProducer> producer() {
    core::MutexLock lock(mutex_);
    return producer_;
  }

  void configure(const StreamConfig& c) {
    if (configured_) throw Error::invalid_input("a second config message");
    configured_ = true;
    const int rate = check_wire_config(c.format(), c.encoding(), c.sample_rate());
    if (c.start_frame() < 0) {
      throw Error::invalid_input("start_frame " + std::to_string(c.start_frame()) + " is negative");
    }
    ctx_.registry->check_configured(c.model_id());
    Registry::Lease lease = ctx_.registry->acquire(c.model_id());
    const auto& avatar = *lease.model->avatar;
    if (c.start_frame() >= avatar.frame_count()) {
      throw Error::invalid_input("start_frame " + std::to_string(c.start_frame()) +
                                 " is out of range; the avatar has " +
                                 std::to_string(avatar.frame_count()) + " frames");
    }
    format_ = c.format();
    audio_.configure(c.encoding() == StreamConfig::ENCODING_S16LE, rate);
    ctx_avatar_width_ = avatar.width();
    ctx_avatar_height_ = avatar.height();
    pipeline::ProducerSettings settings;
    settings.walk_start = c.start_frame();
    settings.encoding = frame_encoding_for(format_);
    settings.jpeg_quality = ctx_.output.jpeg_quality;
    settings.blend = ctx_.output.blend_options();
    settings.keep_image = format_ == StreamConfig::FORMAT_RAW;
    settings.window_frames = ctx_.pipeline.window_frames;
    settings.audio = ctx_.audio;
    ServerMetrics* metrics = ctx_.metrics;
    settings.observe = [metrics](std::string_view stage, double ms) {
      metrics->observe_ms(std::string(stage), ms);
    };
    auto producer =
        pipeline::FrameProducer::streaming(ctx_.target(*lease.model), settings, weak_from_this());
    {
      core::MutexLock lock(mutex_);
      if (ended_) return;
      producer_ = producer;
      lease_ = std::move(lease);
    }
    producer->start();
  }

  void add_audio(const std::string& bytes) {
    core::Stopwatch sw;
    std::vector<float> samples = audio_.decode(bytes, "audio chunk");
    ctx_.metrics->observe_ms("decode", sw.elapsed_ms());
    // Even an empty piece goes in: the producer then asks for the next message.
    if (auto p = producer()) p->append_audio(std::move(samples));  // none: the stream ended
  }

  void end_of_audio() {
    if (!stop_reading()) return;
    if (!configured_) throw Error::invalid_input("the stream ended before its config message");
    auto p = producer();
    if (!p) return;  // the stream ended meanwhile
    std::vector<float> tail = audio_.finish("audio");
    if (!tail.empty()) p->append_audio(std::move(tail));
    p->end_audio();
  }

  // Touched only on the strand (written by configure before the producer exists).
  bool configured_ = false;
  StreamConfig::Format format_ = StreamConfig::FORMAT_JPEG;
  int ctx_avatar_width_ = 0;
  int ctx_avatar_height_ = 0;
  WireAudio audio_;

  std::shared_ptr<pipeline::FrameProducer> producer_ LIPSYNC_GUARDED_BY(mutex_);
};

}  // namespace

StreamService::StreamService(const ServiceContext& context) : context_(context) {}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamService::start(
    grpc::CallbackServerContext* rpc) {
  return start_bidi_call<StreamCall>(context_, *rpc, active_, context_.server.max_streams,
                                     "streams", "server.max_streams");
}

}  // namespace lipsync::server
