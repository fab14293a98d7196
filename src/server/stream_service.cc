#include "server/stream_service.h"

#include <deque>
#include <mutex>

#include "audio/audio_file.h"
#include "audio/mel_spectrogram.h"
#include "audio/streaming_resampler.h"
#include "audio/video_frames.h"
#include "core/stopwatch.h"
#include "core/strand.h"
#include "server/bidi_call.h"
#include "server/grpc_status.h"

namespace lipsync::server {
namespace {

using lipsync::v1::StreamConfig;
using lipsync::v1::StreamRequest;
using lipsync::v1::StreamResponse;

constexpr const char* kMethod = "Stream";

class StreamCall;

// gRPC's side of a stream: it forwards every reaction to the call and owns the read buffer.
using StreamReactor = BidiReactor<StreamCall>;

// One stream: the consumer of its producer, and everything queued work may touch. It outlives
// the reactor; the reactor is reached only under mutex_ and never after OnDone.
class StreamCall final : public pipeline::FrameConsumer,
                         public std::enable_shared_from_this<StreamCall> {
 public:
  StreamCall(const ServiceContext& ctx, std::atomic<int>& active)
      : ctx_(ctx), active_(active), strand_(*ctx.workers) {}

  void attach(StreamReactor* reactor, std::uint64_t call_id) {
    std::lock_guard lock(mutex_);
    reactor_ = reactor;
    call_id_ = call_id;
  }
  void detach() {
    {
      std::lock_guard lock(mutex_);
      reactor_ = nullptr;
      ended_ = true;
    }
    --active_;
  }

  // Reads the config message.
  void begin() { request_read(); }

  void read_done(bool ok, grpc::ByteBuffer bytes) {
    int number = 0;
    {
      std::lock_guard lock(mutex_);
      reading_ = false;
      number = ++messages_read_;
    }
    auto self = shared_from_this();
    if (!ok) {  // the client closed its side (or went away): the end of the audio
      strand_.post([self] { self->run([&] { self->end_of_audio(); }); });
      return;
    }
    auto message = std::make_shared<StreamRequest>();
    if (!grpc::SerializationTraits<StreamRequest>::Deserialize(&bytes, message.get()).ok()) {
      end(to_status(Error::invalid_input("message " + std::to_string(number) +
                                         " is not a valid lipsync.v1.StreamRequest (protobuf "
                                         "parsing failed)")));
      return;
    }
    strand_.post([self, message] { self->run([&] { self->handle(*message); }); });
  }

  void write_done(bool ok) {
    std::shared_ptr<pipeline::FrameProducer> producer;
    bool finish = false;
    {
      std::lock_guard lock(mutex_);
      writing_ = false;
      if (ended_) return;
      if (!ok) {
        finish = true;
      } else {
        outbox_.pop_front();
        producer = producer_;
        write_next_locked();
        finish = outbox_.empty() && !writing_ && producer_done_;
      }
    }
    if (!ok) {
      end(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    if (producer) producer->release(1);
    if (finish) end(grpc::Status::OK);
  }

  void cancelled() { end(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client")); }

  // Ends the stream once: drops the producer's queued work, releases the lease, sends the status.
  void end(const grpc::Status& status) {
    std::shared_ptr<pipeline::FrameProducer> producer;
    Registry::Lease lease;
    StreamReactor* reactor = nullptr;
    std::uint64_t call_id = 0;
    {
      std::lock_guard lock(mutex_);
      if (ended_ || reactor_ == nullptr) return;
      ended_ = true;
      reactor = reactor_;
      call_id = call_id_;
      producer = std::move(producer_);
      lease = std::move(lease_);
    }
    strand_.close();
    if (producer) producer->cancel();
    producer.reset();
    lease.model.reset();
    ctx_.metrics->count_request(kMethod, status_code_name(status.error_code()));
    ctx_.calls->remove(call_id);
    reactor->finish(status);
  }

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
    std::lock_guard lock(mutex_);
    if (ended_) return;
    outbox_.push_back(std::move(bytes));
    write_next_locked();
  }

  void on_audio_wanted() override { request_read(); }

  void on_finished() override {
    bool finish = false;
    {
      std::lock_guard lock(mutex_);
      producer_done_ = true;
      finish = outbox_.empty() && !writing_;
    }
    if (finish) end(grpc::Status::OK);
  }

  void on_failed(const Error& error) override { end(to_status(error)); }

 private:
  // Runs strand work, turning its errors into the stream's status.
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

  void request_read() {
    std::lock_guard lock(mutex_);
    if (ended_ || reactor_ == nullptr || reading_ || no_more_reads_) return;
    reading_ = true;
    reactor_->read();
  }

  // Requires mutex_ held.
  void write_next_locked() {
    if (ended_ || writing_ || outbox_.empty() || reactor_ == nullptr) return;
    writing_ = true;
    reactor_->write(&outbox_.front());
  }

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
    std::lock_guard lock(mutex_);
    return producer_;
  }

  void configure(const StreamConfig& c) {
    if (configured_) throw Error::invalid_input("a second config message");
    configured_ = true;
    if (!StreamConfig::Format_IsValid(c.format())) {
      throw Error::invalid_input("format " + std::to_string(c.format()) +
                                 " is not defined; expected FORMAT_JPEG (0), FORMAT_PNG (1) or "
                                 "FORMAT_RAW (2)");
    }
    if (!StreamConfig::Encoding_IsValid(c.encoding())) {
      throw Error::invalid_input("encoding " + std::to_string(c.encoding()) +
                                 " is not defined; expected ENCODING_S16LE (0) or "
                                 "ENCODING_F32LE (1)");
    }
    const int rate = c.sample_rate() == 0 ? audio::kSampleRateHz : c.sample_rate();
    if (rate < 8000 || rate > 192000) {
      throw Error::invalid_input("sample_rate " + std::to_string(c.sample_rate()) +
                                 " is out of range; expected 0 (16000) or 8000 to 192000");
    }
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
    s16_ = c.encoding() == StreamConfig::ENCODING_S16LE;
    ctx_avatar_width_ = avatar.width();
    ctx_avatar_height_ = avatar.height();
    if (rate != audio::kSampleRateHz) {
      resampler_ = std::make_unique<audio::StreamingResampler>(rate, audio::kSampleRateHz);
    }
    pipeline::ProducerSettings settings;
    settings.walk_start = c.start_frame();
    settings.encoding = format_ == StreamConfig::FORMAT_RAW   ? pipeline::FrameEncoding::kNone
                        : format_ == StreamConfig::FORMAT_PNG ? pipeline::FrameEncoding::kPng
                                                              : pipeline::FrameEncoding::kJpeg;
    settings.jpeg_quality = ctx_.output.jpeg_quality;
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
      std::lock_guard lock(mutex_);
      if (ended_) return;
      producer_ = producer;
      lease_ = std::move(lease);
    }
    producer->start();
  }

  void add_audio(const std::string& bytes) {
    core::Stopwatch sw;
    const std::size_t width = s16_ ? 2 : 4;
    std::string data = std::move(partial_sample_);
    data += bytes;
    const std::size_t whole = data.size() - data.size() % width;
    partial_sample_ = data.substr(whole);
    std::vector<float> samples = audio::decode_raw(
        std::as_bytes(std::span(data.data(), whole)),
        s16_ ? audio::RawEncoding::kS16le : audio::RawEncoding::kF32le, "audio chunk");
    audio::validate_samples(samples, "audio chunk");
    if (resampler_) samples = resampler_->process(samples);
    ctx_.metrics->observe_ms("decode", sw.elapsed_ms());
    // Even an empty piece goes in: the producer then asks for the next message.
    if (auto p = producer()) p->append_audio(std::move(samples));  // none: the stream ended
  }

  void end_of_audio() {
    {
      std::lock_guard lock(mutex_);
      if (no_more_reads_) return;
      no_more_reads_ = true;
    }
    if (!configured_) throw Error::invalid_input("the stream ended before its config message");
    auto p = producer();
    if (!p) return;  // the stream ended meanwhile
    if (!partial_sample_.empty()) {
      throw Error::invalid_input("the audio ends with " + std::to_string(partial_sample_.size()) +
                                 " bytes of an incomplete sample");
    }
    if (resampler_) p->append_audio(resampler_->finish());
    p->end_audio();
  }

  const ServiceContext& ctx_;
  std::atomic<int>& active_;
  core::Strand strand_;

  // Touched only on the strand (written by configure before the producer exists).
  bool configured_ = false;
  StreamConfig::Format format_ = StreamConfig::FORMAT_JPEG;
  bool s16_ = false;
  int ctx_avatar_width_ = 0;
  int ctx_avatar_height_ = 0;
  std::unique_ptr<audio::StreamingResampler> resampler_;
  std::string partial_sample_;  // bytes of a sample split across chunks

  std::mutex mutex_;
  StreamReactor* reactor_ = nullptr;     // null after OnDone (guarded)
  std::uint64_t call_id_ = 0;            // guarded
  bool ended_ = false;                   // Finish was called (guarded)
  bool reading_ = false;                 // a read is in flight (guarded)
  bool no_more_reads_ = false;           // the end marker came, or the client closed (guarded)
  bool writing_ = false;                 // a write is in flight (guarded)
  bool producer_done_ = false;           // every frame was handed over (guarded)
  int messages_read_ = 0;                // guarded
  std::deque<grpc::ByteBuffer> outbox_;  // frames waiting to be written, in order (guarded)
  std::shared_ptr<pipeline::FrameProducer> producer_;  // guarded
  Registry::Lease lease_;                              // guarded
};

}  // namespace

StreamService::StreamService(const ServiceContext& context) : context_(context) {}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamService::start(
    grpc::CallbackServerContext*) {
  return start_bidi_call<StreamCall>(context_, active_, context_.server.max_streams, "streams",
                                     "server.max_streams");
}

}  // namespace lipsync::server
