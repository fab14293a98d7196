// Registry: the configured models (an avatar + a model folder under one id), loaded on demand or
// at start (preload), counted, and evicted by policy (lru or lfu) when max_loaded or the memory
// budget would be exceeded, never while a request holds one (a Lease: the calls release theirs
// before they send their reply). Each loaded model owns its generator Scheduler; stop_all()
// stops and joins every scheduler before any model is freed (shutdown).
// Thread contract: every method may be called from many threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "avatar/avatar.h"
#include "core/config_table.h"
#include "core/mutex.h"
#include "infer/infer_options.h"
#include "infer/models.h"
#include "pipeline/scheduler.h"
#include "pipeline/silence_idle.h"
#include "render/jpeg_splice.h"

namespace lipsync::server {

struct ModelSpec {
  std::string id;
  std::filesystem::path avatar;
  std::filesystem::path models;
  bool preload = false;
};

enum class EvictionPolicy { kLru, kLfu };

struct RegistryOptions {
  int max_loaded = 4;                            // config key registry.max_loaded (1..1000)
  std::int64_t memory_budget_mb = 8192;          // config key registry.memory_budget_mb (1..)
  EvictionPolicy policy = EvictionPolicy::kLru;  // registry.policy: lru or lfu
  int idle_unload_s = 0;                         // registry.idle_unload_s: 0 = never (0..604800)
  void validate() const;
  static const core::ConfigTable<RegistryOptions>& config();
};

// One loaded model: its avatar, networks and generator queue.
struct LoadedModel {
  std::string id;
  std::shared_ptr<const avatar::Avatar> avatar;
  std::unique_ptr<infer::Models> models;
  std::unique_ptr<pipeline::Scheduler> scheduler;
  // The avatar's JPEG frames that later ones splice into (null when avatar.jpeg_cache_mb is 0).
  std::unique_ptr<render::JpegSpliceCache> jpeg_splices;
  // What live sessions idle on (avatar.idle: silence); null with avatar.idle: template.
  std::shared_ptr<const pipeline::SilenceIdle> silence_idle;
  std::int64_t weight_bytes = 0;  // the ONNX files' sizes
  // Bytes this model holds now: weights plus the avatar's cached frames, crops and JPEGs, and
  // its idle faces.
  std::int64_t memory_bytes() const;
};

struct ModelStatus {
  std::string id;
  bool loaded = false;
  std::int64_t memory_mb = 0;
  std::int64_t request_count = 0;   // requests, streams and loads that used the model
  double total_inference_ms = 0;    // time inside the generator, all batches
  std::int64_t generator_runs = 0;  // generator batches run
  std::int64_t last_used_unix_ms = 0;
  std::int64_t cache_bytes = 0;  // the avatar's cached frames and crops
  // The execution provider the generator runs on ("cpu", "cuda"), empty when not loaded.
  std::string provider;
  int max_batch = 0;  // the scheduler's largest batch (scheduler.max_batch, resolved)
  // Live frames the scheduler did not run: they could not have been on time (this load).
  std::int64_t skipped_frames = 0;
  // Generator time per generator run (a batch), the old API's avg_inference_ms.
  double avg_inference_ms() const {
    return generator_runs > 0 ? total_inference_ms / static_cast<double>(generator_runs) : 0.0;
  }
};

class Registry {
 public:
  // on_batch (optional) is told the size and milliseconds of every generator batch.
  Registry(std::vector<ModelSpec> specs, RegistryOptions options, infer::InferOptions infer,
           avatar::AvatarOptions avatar, pipeline::SchedulerOptions scheduler,
           std::function<void(int, double)> on_batch = {});
  ~Registry();

  // Loads every model marked preload (errors propagate: a bad config fails start-up).
  void preload();

  struct Lease {
    std::shared_ptr<LoadedModel> model;
    bool was_loaded = false;  // already loaded before this call
    double load_ms = 0;
  };
  // The model, loaded if needed (evicting idle ones by policy). Throws kNotFound for an unknown
  // id, kResourceExhausted when no room can be made, kInvalidInput for a bad model folder,
  // kUnavailable after stop_all().
  Lease acquire(const std::string& id);
  // Unloads now; throws kNotFound / kUnavailable (in use).
  void unload(const std::string& id);
  // Unloads models idle for longer than idle_unload_s (called periodically by the server).
  void unload_idle();
  // Stops and joins the scheduler of every loaded model (their queued jobs fail with
  // kUnavailable) and refuses later acquires. The models stay until the registry is destroyed.
  void stop_all();

  std::vector<ModelStatus> status() const;
  int loaded_count() const;
  int max_loaded() const { return options_.max_loaded; }
  // Throws Error::Code::kNotFound, listing the configured ids, unless `id` is configured.
  void check_configured(const std::string& id) const;
  std::size_t queue_depth() const;  // frames waiting in all schedulers

 private:
  // The comments name the Registry's locks that guard an entry's fields: the analysis cannot
  // check a field against a lock of another object.
  struct Entry {
    ModelSpec spec;
    std::shared_ptr<LoadedModel> loaded;  // guarded by mutex_
    std::int64_t uses = 0;
    double generator_ms = 0;          // guarded by stats_mutex_
    std::int64_t generator_runs = 0;  // guarded by stats_mutex_
    std::chrono::steady_clock::time_point last_used{};
    std::int64_t last_used_unix_ms = 0;
    core::Mutex load_mutex;  // serialises loading one model
  };
  std::shared_ptr<LoadedModel> load(Entry& entry);
  static std::shared_ptr<const pipeline::SilenceIdle> build_idle(const LoadedModel& model);
  void record_batch(Entry& entry, int size, double ms);
  int loaded_count_locked() const LIPSYNC_REQUIRES(mutex_);
  // Makes room for one more model of `bytes`. Returns the evicted models,
  // whose schedulers the caller stops after unlocking (a stopping scheduler's last batch reports
  // to record_batch).
  std::vector<std::shared_ptr<LoadedModel>> evict_for(std::int64_t bytes, const std::string& keep)
      LIPSYNC_REQUIRES(mutex_);

  const RegistryOptions options_;
  const infer::InferOptions infer_;
  const avatar::AvatarOptions avatar_;
  const pipeline::SchedulerOptions scheduler_;
  const std::function<void(int, double)> on_batch_;
  mutable core::Mutex mutex_;
  // Made by the constructor and fixed after it (each entry's `loaded` is guarded by mutex_).
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  bool stopped_ LIPSYNC_GUARDED_BY(mutex_) = false;
  mutable core::Mutex stats_mutex_;  // the generator counters; taken alone or after mutex_
};

std::string_view to_string(EvictionPolicy policy);

}  // namespace lipsync::server
