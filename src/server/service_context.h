// ServiceContext: what the gRPC services share: the registry, the request workers, the metrics,
// the call tracker, and the settings of the keys they honour.
// Thread contract: the pointers are shared by every call (each is thread-safe); the settings are
// fixed after start.
#pragma once

#include <atomic>

#include "audio/audio_options.h"
#include "core/worker_pool.h"
#include "pipeline/frame_producer.h"
#include "pipeline/live_session.h"
#include "pipeline/ticker.h"
#include "render/output_options.h"
#include "server/call_tracker.h"
#include "server/registry.h"
#include "server/server_metrics.h"
#include "server/server_options.h"

namespace lipsync::server {

class SessionHub;

struct ServiceContext {
  Registry* registry = nullptr;
  core::WorkerPool* workers = nullptr;
  ServerMetrics* metrics = nullptr;
  CallTracker* calls = nullptr;
  pipeline::Ticker* ticker = nullptr;                         // the live sessions' clock
  std::shared_ptr<pipeline::IdlePictureCache> idle_pictures;  // of every live session
  std::atomic<int>* live_sessions = nullptr;  // gRPC and HTTP sessions now (live.max_sessions)
  SessionHub* hub = nullptr;                  // every live session, by id
  ServerOptions server;
  pipeline::LiveOptions live;
  render::OutputOptions output;
  audio::AudioOptions audio;
  pipeline::PipelineOptions pipeline;

  // Where a call's frames come from: the leased model's avatar, encoder and scheduler.
  pipeline::FrameTarget target(const LoadedModel& model) const {
    return {model.avatar, &model.models->encoder(), model.scheduler.get(), workers,
            model.jpeg_splices.get()};
  }
};

}  // namespace lipsync::server
