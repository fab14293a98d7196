#include "server/monolithic_service.h"

#include <cmath>
#include <cstring>
#include <mutex>

#include "audio/audio_file.h"
#include "audio/mel_spectrogram.h"
#include "audio/resampler.h"
#include "avatar/template_walk.h"
#include "core/stopwatch.h"
#include "infer/model_family.h"
#include "pipeline/feature_track.h"
#include "pipeline/offline_renderer.h"
#include "render/compositor.h"
#include "render/image_encoder.h"

namespace lipsync::server {
namespace {

constexpr int kMinSampleRate = 8000;
constexpr int kMaxSampleRate = 192000;

// Everything one InferBatchComposite call carries between threads.
// The request's fields are copied out: gRPC frees the request once the call is finished, while
// frames of a failed call may still sit in the scheduler.
struct CompositeCall {
  grpc::ServerUnaryReactor* reactor = nullptr;
  monolithic::CompositeBatchResponse* response = nullptr;  // only used before `finished`
  std::string model_id;
  int batch = 0;
  int start_frame = 0;
  std::string visual_frames;
  core::Stopwatch clock;
  Registry::Lease lease;
  std::unique_ptr<pipeline::FeatureTrack> track;
  std::vector<std::vector<std::uint8_t>> jpegs;
  std::atomic<int> remaining{0};
  std::atomic<bool> finished{false};
  std::mutex timing_mutex;
  double composite_ms = 0;
  core::Stopwatch generator_clock;
  double inference_ms = 0;
};

}  // namespace

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
    case Error::Code::kInternal:
      break;
  }
  return {grpc::StatusCode::INTERNAL, error.message()};
}

MonolithicService::MonolithicService(Registry& registry, core::WorkerPool& workers,
                                     const ServerOptions& options, ServerMetrics& metrics)
    : registry_(registry), workers_(workers), options_(options), metrics_(metrics) {}

grpc::ServerUnaryReactor* MonolithicService::InferBatchComposite(
    grpc::CallbackServerContext* context, const monolithic::CompositeBatchRequest* request,
    monolithic::CompositeBatchResponse* response) {
  auto call = std::make_shared<CompositeCall>();
  call->reactor = context->DefaultReactor();
  call->response = response;
  response->set_gpu_id(-1);  // CPU

  auto fail = [this, call](const Error& e) {
    if (call->finished.exchange(true)) return;
    if (call->lease.model) registry_.record(call->model_id, call->inference_ms);
    call->response->set_success(false);
    call->response->set_error(e.message());
    call->response->clear_composited_frames();
    const grpc::Status status = to_status(e);
    metrics_.count_request("InferBatchComposite", std::to_string(status.error_code()));
    --inflight_;
    call->reactor->Finish(status);
  };

  // Cheap checks on the RPC thread.
  try {
    const auto& r = *request;
    registry_.check_configured(r.model_id());
    if (r.batch_size() < 1 || r.batch_size() > options_.max_request_frames) {
      throw Error::invalid_input("batch_size " + std::to_string(r.batch_size()) +
                                 " is out of range; expected 1 to " +
                                 std::to_string(options_.max_request_frames));
    }
    if (r.start_frame_idx() < 0) {
      throw Error::invalid_input("start_frame_idx " + std::to_string(r.start_frame_idx()) +
                                 " is negative; expected 0 or more");
    }
    if (r.raw_audio().empty() || r.raw_audio().size() % 4 != 0) {
      throw Error::invalid_input("raw_audio has " + std::to_string(r.raw_audio().size()) +
                                 " bytes; expected float32 little-endian samples (a non-zero "
                                 "multiple of 4 bytes)");
    }
    if (r.sample_rate() != 0 &&
        (r.sample_rate() < kMinSampleRate || r.sample_rate() > kMaxSampleRate)) {
      throw Error::invalid_input("sample_rate " + std::to_string(r.sample_rate()) +
                                 " is out of range; expected 0 (16000) or 8000 to 192000");
    }
    const std::size_t expected_visual =
        static_cast<std::size_t>(r.batch_size()) * infer::kImageInputSize * sizeof(float);
    if (!r.visual_frames().empty() && r.visual_frames().size() != expected_visual) {
      throw Error::invalid_input("visual_frames has " + std::to_string(r.visual_frames().size()) +
                                 " bytes; expected empty (use the avatar) or batch_size x 6 x 320 "
                                 "x 320 float32 = " +
                                 std::to_string(expected_visual));
    }
    if (++inflight_ > options_.max_inflight_requests) {
      --inflight_;
      throw Error::resource_exhausted("too many requests in flight (" +
                                      std::to_string(options_.max_inflight_requests) +
                                      "); retry later");
    }
  } catch (const Error& e) {
    call->finished = true;
    response->set_success(false);
    response->set_error(e.message());
    const grpc::Status status = to_status(e);
    metrics_.count_request("InferBatchComposite", std::to_string(status.error_code()));
    call->reactor->Finish(status);
    return call->reactor;
  }

  call->model_id = request->model_id();
  call->batch = request->batch_size();
  call->start_frame = request->start_frame_idx();
  call->visual_frames = request->visual_frames();

  // The rest on a request worker: load, audio, features; then the scheduler. The request object
  // stays valid until Finish, which only happens below.
  workers_.post([this, call, fail, request] {
    try {
      const auto& r = *request;
      call->lease = registry_.acquire(r.model_id());
      call->response->set_model_loaded(call->lease.was_loaded);
      call->response->set_model_load_time_ms(static_cast<float>(call->lease.load_ms));
      core::Stopwatch audio_clock;
      core::Stopwatch stage;
      std::vector<float> samples =
          audio::decode_raw(std::as_bytes(std::span(r.raw_audio().data(), r.raw_audio().size())),
                            audio::RawEncoding::kF32le, "raw_audio");
      audio::validate_samples(samples, "raw_audio");
      const int rate = r.sample_rate() == 0 ? 16000 : r.sample_rate();
      if (rate != 16000) samples = audio::resample(samples, rate, 16000);
      metrics_.observe_ms("decode", stage.elapsed_ms());
      int frames = 0;
      try {
        frames = pipeline::frames_for_samples(samples.size());
      } catch (const Error& e) {
        throw e.with_context("raw_audio at 16 kHz");
      }
      if (r.batch_size() > frames) {
        throw Error::invalid_input("raw_audio gives " + std::to_string(frames) + " frames (" +
                                   std::to_string(samples.size()) +
                                   " samples at 16 kHz); batch_size " +
                                   std::to_string(r.batch_size()) + " needs at least " +
                                   std::to_string(r.batch_size() - 1) + " * 640 + 1240 samples");
      }
      const auto& model = *call->lease.model;
      pipeline::ClipFeatureTimings timings;
      pipeline::ClipFeatures features = pipeline::encode_clip_features(
          samples, model.models->encoder(), audio::AudioOptions{}, &timings);
      metrics_.observe_ms("mel", timings.mel_ms);
      metrics_.observe_ms("windows", timings.windows_ms);
      metrics_.observe_ms("encoder", timings.encoder_ms);
      call->track = std::make_unique<pipeline::FeatureTrack>(
          pipeline::FeatureTrack::from_features(std::move(features)));
      call->response->set_audio_processing_ms(static_cast<float>(audio_clock.elapsed_ms()));
      // Client-supplied ROIs must be in [0, 1].
      const auto* visual = reinterpret_cast<const float*>(call->visual_frames.data());
      if (!call->visual_frames.empty()) {
        const std::size_t n = call->visual_frames.size() / sizeof(float);
        for (std::size_t i = 0; i < n; ++i) {
          float v;
          std::memcpy(&v, visual + i, sizeof v);
          if (!(v >= 0.0f && v <= 1.0f)) {
            throw Error::invalid_input("visual_frames value " + std::to_string(i) + " is " +
                                       std::to_string(v) + "; expected 0 to 1");
          }
        }
      }
      const int batch = r.batch_size();
      call->jpegs.resize(batch);
      call->remaining = batch;
      const int n_templates = model.avatar->frame_count();
      std::vector<pipeline::FrameJob> jobs;
      for (int j = 0; j < batch; ++j) {
        const int t = avatar::template_frame_for(call->start_frame + j, n_templates, 0);
        pipeline::FrameJob job;
        job.fill = [call, j, t, visual](std::span<float> image, std::span<float> audio_in) {
          if (call->visual_frames.empty()) {
            call->lease.model->avatar->pack_generator_input(t, image);
          } else {
            std::memcpy(image.data(), visual + static_cast<std::size_t>(j) * image.size(),
                        image.size_bytes());
          }
          call->track->frame_audio(j, audio_in);
        };
        job.done = [this, call, j, t, fail](std::span<const float> output) {
          auto copy = std::make_shared<std::vector<float>>(output.begin(), output.end());
          workers_.post([this, call, j, t, copy, fail] {
            try {
              core::Stopwatch sw;
              thread_local cv::Mat frame;
              render::composite(*call->lease.model->avatar, t, *copy, frame);
              metrics_.observe_ms("composite", sw.elapsed_ms());
              core::Stopwatch enc;
              call->jpegs[j] = render::encode_jpeg(frame, options_.jpeg_quality);
              metrics_.observe_ms("encode", enc.elapsed_ms());
              {
                std::lock_guard lock(call->timing_mutex);
                call->composite_ms += sw.elapsed_ms();
              }
              if (--call->remaining == 0) {
                if (call->finished.exchange(true)) return;
                auto& resp = *call->response;
                for (auto& jpeg : call->jpegs) resp.add_composited_frames(jpeg.data(), jpeg.size());
                std::lock_guard lock(call->timing_mutex);
                resp.set_inference_time_ms(static_cast<float>(call->inference_ms));
                resp.set_composite_time_ms(static_cast<float>(call->composite_ms));
                resp.set_total_time_ms(static_cast<float>(call->clock.elapsed_ms()));
                resp.set_success(true);
                registry_.record(call->model_id, call->inference_ms);
                metrics_.count_request("InferBatchComposite", "0");
                metrics_.add_frames(static_cast<std::int64_t>(call->jpegs.size()));
                --inflight_;
                call->reactor->Finish(grpc::Status::OK);
              }
            } catch (const Error& e) {
              fail(e);
            }
          });
          {
            // Queueing plus generator time until this call's latest frame came out.
            std::lock_guard lock(call->timing_mutex);
            call->inference_ms = call->generator_clock.elapsed_ms();
          }
        };
        job.failed = fail;
        jobs.push_back(std::move(job));
      }
      call->generator_clock.reset();
      model.scheduler->submit(std::move(jobs));
    } catch (const Error& e) {
      fail(e);
    } catch (const std::exception& e) {
      fail(Error::internal(e.what()));
    }
  });
  return call->reactor;
}

grpc::ServerUnaryReactor* MonolithicService::ListModels(grpc::CallbackServerContext* context,
                                                        const monolithic::ListModelsRequest*,
                                                        monolithic::ListModelsResponse* response) {
  for (const ModelStatus& s : registry_.status()) {
    auto* m = response->add_models();
    m->set_model_id(s.id);
    m->set_loaded(s.loaded);
    m->set_gpu_id(-1);
    m->set_memory_mb(s.memory_mb);
    m->set_request_count(static_cast<std::int32_t>(s.request_count));
    m->set_avg_inference_ms(static_cast<float>(s.avg_inference_ms()));
  }
  metrics_.count_request("ListModels", "0");
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MonolithicService::LoadModel(grpc::CallbackServerContext* context,
                                                       const monolithic::LoadModelRequest* request,
                                                       monolithic::LoadModelResponse* response) {
  auto* reactor = context->DefaultReactor();
  workers_.post([this, reactor, request, response] {
    try {
      const auto lease = registry_.acquire(request->model_id());
      response->set_success(true);
      response->set_gpu_id(-1);
      response->set_load_time_ms(static_cast<float>(lease.load_ms));
      metrics_.count_request("LoadModel", "0");
      reactor->Finish(grpc::Status::OK);
    } catch (const Error& e) {
      response->set_success(false);
      response->set_error(e.message());
      const auto status = to_status(e);
      metrics_.count_request("LoadModel", std::to_string(status.error_code()));
      reactor->Finish(status);
    }
  });
  return reactor;
}

grpc::ServerUnaryReactor* MonolithicService::UnloadModel(
    grpc::CallbackServerContext* context, const monolithic::UnloadModelRequest* request,
    monolithic::UnloadModelResponse* response) {
  auto* reactor = context->DefaultReactor();
  try {
    registry_.unload(request->model_id());
    response->set_success(true);
    metrics_.count_request("UnloadModel", "0");
    reactor->Finish(grpc::Status::OK);
  } catch (const Error& e) {
    response->set_success(false);
    response->set_error(e.message());
    const auto status = to_status(e);
    metrics_.count_request("UnloadModel", std::to_string(status.error_code()));
    reactor->Finish(status);
  }
  return reactor;
}

grpc::ServerUnaryReactor* MonolithicService::GetModelStats(
    grpc::CallbackServerContext* context, const monolithic::GetModelStatsRequest*,
    monolithic::GetModelStatsResponse* response) {
  for (const ModelStatus& s : registry_.status()) {
    auto* m = response->add_models();
    m->set_model_id(s.id);
    m->set_loaded(s.loaded);
    m->set_gpu_id(-1);
    m->set_memory_mb(s.memory_mb);
    m->set_request_count(static_cast<std::int32_t>(s.request_count));
    m->set_total_inference_ms(static_cast<std::int64_t>(std::llround(s.total_inference_ms)));
    m->set_avg_inference_ms(static_cast<float>(s.avg_inference_ms()));
    m->set_last_used_timestamp(s.last_used_unix_ms);
  }
  metrics_.count_request("GetModelStats", "0");
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MonolithicService::Health(grpc::CallbackServerContext* context,
                                                    const monolithic::HealthRequest*,
                                                    monolithic::HealthResponse* response) {
  response->set_healthy(true);
  response->set_loaded_models(registry_.loaded_count());
  response->set_max_models(registry_.max_loaded());
  metrics_.count_request("Health", "0");
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace lipsync::server
