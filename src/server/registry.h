// Registry: the configured models (an avatar + a model folder under one id), loaded on demand or
// at start (preload), counted, and evicted by policy (lru or lfu) when max_loaded or the memory
// budget would be exceeded, never while a request holds one. Each loaded model owns its
// generator Scheduler.
// Thread contract: every method may be called from many threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "avatar/avatar.h"
#include "infer/infer_options.h"
#include "infer/models.h"
#include "pipeline/scheduler.h"

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
};

// One loaded model: its avatar, networks and generator queue.
struct LoadedModel {
  std::string id;
  std::shared_ptr<const avatar::Avatar> avatar;
  std::unique_ptr<infer::Models> models;
  std::unique_ptr<pipeline::Scheduler> scheduler;
  std::int64_t weight_bytes = 0;  // the ONNX files' sizes
  // Bytes this model holds now: weights plus the avatar's cached frames and crops.
  std::int64_t memory_bytes() const;
};

struct ModelStatus {
  std::string id;
  bool loaded = false;
  std::int64_t memory_mb = 0;
  std::int64_t request_count = 0;
  double total_inference_ms = 0;
  std::int64_t last_used_unix_ms = 0;
  std::int64_t cache_bytes = 0;  // the avatar's cached frames and crops
  double avg_inference_ms() const {
    return request_count > 0 ? total_inference_ms / static_cast<double>(request_count) : 0.0;
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
  // id, kResourceExhausted when no room can be made, kInvalidInput for a bad model folder.
  Lease acquire(const std::string& id);
  // Unloads now; throws kNotFound / kUnavailable (in use).
  void unload(const std::string& id);
  // Counts a finished request of the model.
  void record(const std::string& id, double inference_ms);
  // Unloads models idle for longer than idle_unload_s (called periodically by the server).
  void unload_idle();

  std::vector<ModelStatus> status() const;
  int loaded_count() const;
  int max_loaded() const { return options_.max_loaded; }
  // Throws Error::Code::kNotFound, listing the configured ids, unless `id` is configured.
  void check_configured(const std::string& id) const;
  std::size_t queue_depth() const;  // frames waiting in all schedulers

 private:
  struct Entry {
    ModelSpec spec;
    std::shared_ptr<LoadedModel> loaded;  // guarded by mutex_
    std::int64_t uses = 0;
    double inference_ms = 0;
    std::chrono::steady_clock::time_point last_used{};
    std::int64_t last_used_unix_ms = 0;
    std::mutex load_mutex;  // serialises loading one model
  };
  std::shared_ptr<LoadedModel> load(Entry& entry) const;
  int loaded_count_locked() const;  // requires mutex_ held
  // Makes room for one more model of `bytes`; requires mutex_ held.
  void evict_for(std::int64_t bytes, const std::string& keep);

  const RegistryOptions options_;
  const infer::InferOptions infer_;
  const avatar::AvatarOptions avatar_;
  const pipeline::SchedulerOptions scheduler_;
  const std::function<void(int, double)> on_batch_;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;
};

std::string_view to_string(EvictionPolicy policy);

}  // namespace lipsync::server
