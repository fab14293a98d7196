#include "server/monolithic_service.h"

#include <climits>
#include <cmath>
#include <cstring>

#include "audio/audio_file.h"
#include "audio/mel_spectrogram.h"
#include "audio/resampler.h"
#include "audio/video_frames.h"
#include "contract/model_family.h"
#include "core/mutex.h"
#include "core/stopwatch.h"
#include "core/text.h"
#include "pipeline/feature_track.h"
#include "server/grpc_status.h"
#include "server/input_limits.h"

namespace lipsync::server {
namespace {

using monolithic::CompositeBatchRequest;
using monolithic::CompositeBatchResponse;

constexpr const char* kMethod = "InferBatchComposite";
constexpr auto kDeadlineTolerance = std::chrono::milliseconds(250);

// The fields of a request that need neither the model nor the audio, checked on the RPC thread.
void check_request(const CompositeBatchRequest& r, const ServerOptions& options,
                   const Registry& registry) {
  registry.check_configured(r.model_id());
  if (r.batch_size() < 1 || r.batch_size() > options.max_request_frames) {
    throw Error::invalid_input("batch_size " + std::to_string(r.batch_size()) +
                               " is out of range; expected 1 to " +
                               std::to_string(options.max_request_frames));
  }
  if (r.start_frame_idx() < 0) {
    throw Error::invalid_input("start_frame_idx " + std::to_string(r.start_frame_idx()) +
                               " is negative; expected 0 or more");
  }
  if (r.start_frame_idx() > INT_MAX - r.batch_size()) {
    throw Error::invalid_input("start_frame_idx " + std::to_string(r.start_frame_idx()) +
                               " + batch_size " + std::to_string(r.batch_size()) +
                               " passes the largest frame index, " + std::to_string(INT_MAX));
  }
  if (r.raw_audio().empty() || r.raw_audio().size() % 4 != 0) {
    throw Error::invalid_input("raw_audio has " + std::to_string(r.raw_audio().size()) +
                               " bytes; expected float32 little-endian samples (a non-zero "
                               "multiple of 4 bytes)");
  }
  if (r.sample_rate() != 0) {
    limits::checked(limits::kSpeechRate, "sample_rate (0: 16000)", r.sample_rate());
  }
  const std::size_t expected_visual =
      static_cast<std::size_t>(r.batch_size()) * contract::kImageInputSize * sizeof(float);
  if (!r.visual_frames().empty() && r.visual_frames().size() != expected_visual) {
    throw Error::invalid_input("visual_frames has " + std::to_string(r.visual_frames().size()) +
                               " bytes; expected empty (use the avatar) or batch_size x 6 x 320 x "
                               "320 float32 = " +
                               std::to_string(expected_visual));
  }
}

// Client ROIs must be finite and in [0, 1].
void check_visual_frames(const std::string& bytes) {
  const std::size_t n = bytes.size() / sizeof(float);
  for (std::size_t i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, bytes.data() + i * sizeof v, sizeof v);
    if (!(v >= 0.0f && v <= 1.0f)) {
      throw Error::invalid_input("visual_frames value " + std::to_string(i) + " is " +
                                 std::to_string(v) + "; expected 0 to 1");
    }
  }
}

// Milliseconds of a call's stages, reported by its producer from the workers.
struct CallTimings {
  core::Mutex mutex;
  double composite_ms LIPSYNC_GUARDED_BY(mutex) = 0;  // compositing + JPEG of every frame
};

// One InferBatchComposite call: it holds the model lease and the producer, and is the producer's
// consumer. The reactor (gRPC's side) is reached only under mutex_ and never after OnDone.
class CompositeCall final : public pipeline::FrameConsumer,
                            public std::enable_shared_from_this<CompositeCall> {
 public:
  CompositeCall(const ServiceContext& ctx, std::atomic<int>& inflight,
                grpc::CallbackServerContext* context, grpc::ByteBuffer* wire_response)
      : ctx_(ctx), inflight_(inflight), context_(context), wire_response_(wire_response) {}

  void attach(grpc::ServerUnaryReactor* reactor) {
    core::MutexLock lock(mutex_);
    reactor_ = reactor;
  }
  void detach() {
    core::MutexLock lock(mutex_);
    reactor_ = nullptr;
  }

  // Takes the parsed request (its large fields by swap, not by copy) and goes on on a worker.
  void start(CompositeBatchRequest& request, std::uint64_t call_id) {
    call_id_ = call_id;
    model_id_ = request.model_id();
    batch_ = request.batch_size();
    start_frame_ = request.start_frame_idx();
    sample_rate_ = request.sample_rate() == 0 ? audio::kSampleRateHz : request.sample_rate();
    raw_audio_.swap(*request.mutable_raw_audio());
    if (!request.visual_frames().empty()) {
      auto images = std::make_shared<std::string>();
      images->swap(*request.mutable_visual_frames());
      images_ = std::move(images);
    }
    ctx_.workers->post([self = shared_from_this()] { self->prepare(); });
  }

  // Ends the call once: releases the producer and the lease first (so that UnloadModel right
  // after the reply does not find the model in use), then counts it and sends the status.
  void end(grpc::Status status) {
    std::shared_ptr<pipeline::FrameProducer> producer;
    Registry::Lease lease;
    grpc::ServerUnaryReactor* reactor = nullptr;
    {
      core::MutexLock lock(mutex_);
      if (ended_ || reactor_ == nullptr) return;
      ended_ = true;
      reactor = reactor_;
      producer = std::move(producer_);
      lease = std::move(lease_);
    }
    // gRPC sends no message with a failed status; only a success has a body.
    if (status.ok()) status = send_response(lease);
    if (producer) producer->cancel();  // nothing left to drop after a success
    producer.reset();
    lease.model.reset();
    ctx_.metrics->count_request(kMethod, status_code_name(status.error_code()));
    if (status.ok()) ctx_.metrics->add_frames(batch_);
    --inflight_;
    ctx_.calls->remove(call_id_);
    reactor->Finish(status);
  }

  // The client cancelled or its deadline passed.
  void cancelled() {
    // A client's own deadline timer fires a few milliseconds before the server's copy of the
    // deadline (propagated as a rounded timeout): a cancel that close to it is the deadline.
    const bool deadline =
        context_->deadline() <= std::chrono::system_clock::now() + kDeadlineTolerance;
    end(grpc::Status(deadline ? grpc::StatusCode::DEADLINE_EXCEEDED : grpc::StatusCode::CANCELLED,
                     deadline ? "the deadline passed" : "cancelled by the client"));
  }

  void on_frame(pipeline::ProducedFrame frame) override {
    std::shared_ptr<pipeline::FrameProducer> producer;
    {
      core::MutexLock lock(mutex_);
      if (ended_) return;
      jpegs_.push_back(std::move(frame.encoded));
      producer = producer_;
    }
    if (producer) producer->release(1);
  }
  void on_finished() override { end(grpc::Status::OK); }
  void on_failed(const Error& error) override { end(to_status(error)); }

 private:
  // On a request worker: the model, the audio, the clip's features; then the producer.
  void prepare() {
    try {
      {
        core::MutexLock lock(mutex_);
        if (ended_) return;
      }
      Registry::Lease lease = ctx_.registry->acquire(model_id_);
      const core::Stopwatch audio_clock;
      std::vector<float> samples = decode_audio();
      pipeline::ClipFeatures features = clip_features(samples, *lease.model);
      if (images_) check_visual_frames(*images_);
      start_producer(std::move(lease), std::move(features), audio_clock.elapsed_ms());
    } catch (const Error& e) {
      end(to_status(e));
    } catch (const std::exception& e) {
      end(to_status(Error::internal(e.what())));
    }
  }

  std::vector<float> decode_audio() {
    core::Stopwatch sw;
    std::vector<float> samples = audio::decode_raw(std::as_bytes(std::span(raw_audio_)),
                                                   audio::RawEncoding::kF32le, "raw_audio");
    std::string().swap(raw_audio_);
    audio::validate_samples(samples, "raw_audio");
    if (sample_rate_ != audio::kSampleRateHz) {
      samples = audio::resample(samples, sample_rate_, audio::kSampleRateHz);
    }
    ctx_.metrics->observe_ms("decode", sw.elapsed_ms());
    return samples;
  }

  pipeline::ClipFeatures clip_features(const std::vector<float>& samples,
                                       const LoadedModel& model) {
    if (samples.size() >
        static_cast<std::size_t>(audio::samples_for_seconds(ctx_.audio.max_seconds))) {
      throw Error::invalid_input("raw_audio: longer than audio.max_seconds (" +
                                 std::to_string(ctx_.audio.max_seconds) + " s)");
    }
    int frames = 0;
    try {
      frames = audio::clip_frames_for_samples(samples.size());
    } catch (const Error& e) {
      throw e.with_context("raw_audio at 16 kHz");
    }
    if (batch_ > frames) {
      throw Error::invalid_input(
          "raw_audio gives " + std::to_string(frames) + " frames (" +
          std::to_string(samples.size()) + " samples at 16 kHz); batch_size " +
          std::to_string(batch_) + " needs at least " +
          std::to_string(audio::min_samples_for_clip_frames(batch_)) + " samples");
    }
    pipeline::ClipFeatureTimings t;
    pipeline::ClipFeatures features =
        pipeline::encode_clip_features(samples, model.models->encoder(), ctx_.audio, &t);
    ctx_.metrics->observe_ms("mel", t.mel_ms);
    ctx_.metrics->observe_ms("windows", t.windows_ms);
    ctx_.metrics->observe_ms("encoder", t.encoder_ms);
    return features;
  }

  void start_producer(Registry::Lease lease, pipeline::ClipFeatures features, double audio_ms) {
    pipeline::ProducerSettings settings;
    settings.walk_offset = start_frame_;
    settings.frame_limit = batch_;
    settings.encoding = pipeline::FrameEncoding::kJpeg;
    settings.jpeg_quality = ctx_.output.jpeg_quality;
    settings.blend = ctx_.output.blend_options();
    settings.keep_image = false;
    settings.window_frames = ctx_.pipeline.window_frames;
    settings.audio = ctx_.audio;
    settings.images = images_;
    auto timings = timings_;
    ServerMetrics* metrics = ctx_.metrics;
    settings.observe = [timings, metrics](std::string_view stage, double ms) {
      metrics->observe_ms(std::string(stage), ms);
      if (stage == "composite" || stage == "encode") {
        core::MutexLock lock(timings->mutex);
        timings->composite_ms += ms;
      }
    };
    auto producer = pipeline::FrameProducer::from_clip(ctx_.target(*lease.model), settings,
                                                       std::move(features), weak_from_this());
    {
      core::MutexLock lock(mutex_);
      if (ended_) return;  // cancelled while preparing: the producer never starts
      producer_ = producer;
      lease_ = std::move(lease);
      audio_ms_ = audio_ms;
      inference_clock_.reset();
    }
    producer->start();
  }

  // Before Finish: the response, serialised into the call's reply.
  grpc::Status send_response(const Registry::Lease& lease) {
    CompositeBatchResponse r;
    r.set_gpu_id(-1);  // CPU
    fill_response(r, lease);
    bool own = false;
    const grpc::Status s =
        grpc::SerializationTraits<CompositeBatchResponse>::Serialize(r, wire_response_, &own);
    if (s.ok()) return s;
    return {grpc::StatusCode::INTERNAL, "serialising the response: " + s.error_message()};
  }

  void fill_response(CompositeBatchResponse& r, const Registry::Lease& lease) {
    core::MutexLock lock(mutex_);
    for (auto& jpeg : jpegs_) {
      r.add_composited_frames(reinterpret_cast<const char*>(jpeg.data()), jpeg.size());
    }
    jpegs_.clear();
    r.set_success(true);
    r.set_model_loaded(lease.was_loaded);
    r.set_model_load_time_ms(static_cast<float>(lease.load_ms));
    r.set_audio_processing_ms(static_cast<float>(audio_ms_));
    r.set_inference_time_ms(static_cast<float>(inference_clock_.elapsed_ms()));
    {
      core::MutexLock timings_lock(timings_->mutex);
      r.set_composite_time_ms(static_cast<float>(timings_->composite_ms));
    }
    r.set_total_time_ms(static_cast<float>(clock_.elapsed_ms()));
  }

  const ServiceContext& ctx_;
  std::atomic<int>& inflight_;
  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer* const wire_response_;  // written once, before Finish
  const core::Stopwatch clock_;
  std::shared_ptr<CallTimings> timings_ = std::make_shared<CallTimings>();

  // Set by start(), then read by the worker.
  std::uint64_t call_id_ = 0;
  std::string model_id_;
  int batch_ = 0;
  int start_frame_ = 0;
  int sample_rate_ = audio::kSampleRateHz;
  std::string raw_audio_;
  std::shared_ptr<const std::string> images_;
  core::Mutex mutex_;
  // Set once the producer starts, released by end().
  Registry::Lease lease_ LIPSYNC_GUARDED_BY(mutex_);
  double audio_ms_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  grpc::ServerUnaryReactor* reactor_ LIPSYNC_GUARDED_BY(mutex_) = nullptr;  // null after OnDone
  bool ended_ LIPSYNC_GUARDED_BY(mutex_) = false;
  std::shared_ptr<pipeline::FrameProducer> producer_ LIPSYNC_GUARDED_BY(mutex_);
  std::vector<std::vector<std::uint8_t>> jpegs_ LIPSYNC_GUARDED_BY(mutex_);
  core::Stopwatch inference_clock_ LIPSYNC_GUARDED_BY(mutex_);
};

class CompositeReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit CompositeReactor(std::shared_ptr<CompositeCall> call) : call_(std::move(call)) {
    call_->attach(this);
  }
  void OnCancel() override { call_->cancelled(); }
  void OnDone() override {
    call_->detach();
    delete this;
  }

 private:
  std::shared_ptr<CompositeCall> call_;
};

// The five fields ModelInfo and ModelStats share.
template <class Message>
void fill_model_fields(Message* m, const ModelStatus& s) {
  m->set_model_id(s.id);
  m->set_loaded(s.loaded);
  m->set_gpu_id(-1);
  m->set_memory_mb(s.memory_mb);
  m->set_request_count(static_cast<std::int32_t>(s.request_count));
  m->set_avg_inference_ms(static_cast<float>(s.avg_inference_ms()));
}

// Finishes a small call at once, counted.
grpc::ServerUnaryReactor* finish_now(grpc::CallbackServerContext* context, ServerMetrics& metrics,
                                     const char* method, const grpc::Status& status) {
  metrics.count_request(method, status_code_name(status.error_code()));
  auto* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

MonolithicService::MonolithicService(const ServiceContext& context) : context_(context) {}

grpc::ServerUnaryReactor* MonolithicService::InferBatchComposite(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* wire_request,
    grpc::ByteBuffer* wire_response) {
  CompositeBatchRequest request;
  grpc::ByteBuffer copy(*wire_request);  // shares the slices; parsing consumes the copy
  if (!grpc::SerializationTraits<CompositeBatchRequest>::Deserialize(&copy, &request).ok()) {
    return finish_now(context, *context_.metrics, kMethod,
                      to_status(Error::invalid_input(
                          "the request is not a valid monolithic.CompositeBatchRequest "
                          "(protobuf parsing failed)")));
  }
  try {
    check_request(request, context_.server, *context_.registry);
  } catch (const Error& e) {
    return finish_now(context, *context_.metrics, kMethod, to_status(e));
  }
  if (++inflight_ > context_.server.max_inflight_requests) {
    --inflight_;
    return finish_now(
        context, *context_.metrics, kMethod,
        to_status(Error::resource_exhausted(
            "too many InferBatchComposite calls at once (server.max_inflight_"
            "requests = " +
            std::to_string(context_.server.max_inflight_requests) + "); retry later")));
  }
  auto call = std::make_shared<CompositeCall>(context_, inflight_, context, wire_response);
  auto* reactor = new CompositeReactor(call);
  const std::weak_ptr<CompositeCall> weak = call;
  const std::uint64_t id = context_.calls->add([weak](const grpc::Status& status) {
    if (auto c = weak.lock()) c->end(status);
  });
  if (id == 0) {
    call->end(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
    return reactor;
  }
  call->start(request, id);
  return reactor;
}

grpc::ServerUnaryReactor* MonolithicService::ListModels(grpc::CallbackServerContext* context,
                                                        const monolithic::ListModelsRequest*,
                                                        monolithic::ListModelsResponse* response) {
  for (const ModelStatus& s : context_.registry->status()) {
    fill_model_fields(response->add_models(), s);
  }
  return finish_now(context, *context_.metrics, "ListModels", grpc::Status::OK);
}

grpc::ServerUnaryReactor* MonolithicService::LoadModel(grpc::CallbackServerContext* context,
                                                       const monolithic::LoadModelRequest* request,
                                                       monolithic::LoadModelResponse* response) {
  auto* reactor = context->DefaultReactor();
  const ServiceContext& ctx = context_;
  ctx.workers->post([&ctx, reactor, id = request->model_id(), response] {
    grpc::Status status = grpc::Status::OK;
    try {
      const auto lease = ctx.registry->acquire(id);
      response->set_success(true);
      response->set_gpu_id(-1);
      response->set_load_time_ms(static_cast<float>(lease.load_ms));
    } catch (const Error& e) {
      response->set_success(false);
      response->set_error(e.message());
      status = to_status(e);
    }
    ctx.metrics->count_request("LoadModel", status_code_name(status.error_code()));
    reactor->Finish(status);
  });
  return reactor;
}

grpc::ServerUnaryReactor* MonolithicService::UnloadModel(
    grpc::CallbackServerContext* context, const monolithic::UnloadModelRequest* request,
    monolithic::UnloadModelResponse* response) {
  grpc::Status status = grpc::Status::OK;
  try {
    context_.registry->unload(request->model_id());
    response->set_success(true);
  } catch (const Error& e) {
    response->set_success(false);
    response->set_error(e.message());
    status = to_status(e);
  }
  return finish_now(context, *context_.metrics, "UnloadModel", status);
}

grpc::ServerUnaryReactor* MonolithicService::GetModelStats(
    grpc::CallbackServerContext* context, const monolithic::GetModelStatsRequest*,
    monolithic::GetModelStatsResponse* response) {
  for (const ModelStatus& s : context_.registry->status()) {
    auto* m = response->add_models();
    fill_model_fields(m, s);
    m->set_total_inference_ms(static_cast<std::int64_t>(std::llround(s.total_inference_ms)));
    m->set_last_used_timestamp(s.last_used_unix_ms);
  }
  return finish_now(context, *context_.metrics, "GetModelStats", grpc::Status::OK);
}

grpc::ServerUnaryReactor* MonolithicService::Health(grpc::CallbackServerContext* context,
                                                    const monolithic::HealthRequest*,
                                                    monolithic::HealthResponse* response) {
  response->set_healthy(true);
  response->set_loaded_models(context_.registry->loaded_count());
  response->set_max_models(context_.registry->max_loaded());
  return finish_now(context, *context_.metrics, "Health", grpc::Status::OK);
}

}  // namespace lipsync::server
