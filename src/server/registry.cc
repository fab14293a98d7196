#include "server/registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/file_util.h"
#include "core/mutex.h"
#include "core/stopwatch.h"
#include "core/text.h"

namespace lipsync::server {
namespace {

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t file_bytes(const std::filesystem::path& p) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(p, ec);
  return ec ? 0 : static_cast<std::int64_t>(n);
}

}  // namespace

const core::ConfigTable<RegistryOptions>& RegistryOptions::config() {
  static const auto table =
      core::ConfigTable<RegistryOptions>("registry")
          .integer("max_loaded", &RegistryOptions::max_loaded, 1, 1000, "models loaded at once")
          .integer("memory_budget_mb", &RegistryOptions::memory_budget_mb, 1, 1 << 30,
                   "weights plus cached frames of loaded models")
          .choice("policy", &RegistryOptions::policy,
                  {{"lru", EvictionPolicy::kLru}, {"lfu", EvictionPolicy::kLfu}},
                  "which idle model to evict (never one a request uses)")
          .integer("idle_unload_s", &RegistryOptions::idle_unload_s, 0, 604800,
                   "unload models idle this long (0 = never)");
  return table;
}

void RegistryOptions::validate() const {
  config().validate(*this);
}

std::string_view to_string(EvictionPolicy policy) {
  return policy == EvictionPolicy::kLru ? "lru" : "lfu";
}

std::int64_t LoadedModel::memory_bytes() const {
  return weight_bytes + static_cast<std::int64_t>(avatar->cached_bytes()) +
         static_cast<std::int64_t>(jpeg_splices ? jpeg_splices->used_bytes() : 0) +
         static_cast<std::int64_t>(silence_idle ? silence_idle->bytes() : 0);
}

Registry::Registry(std::vector<ModelSpec> specs, RegistryOptions options, infer::InferOptions infer,
                   avatar::AvatarOptions avatar, pipeline::SchedulerOptions scheduler,
                   std::function<void(int, double)> on_batch)
    : options_(options),
      infer_(std::move(infer)),
      avatar_(avatar),
      scheduler_(scheduler),
      on_batch_(std::move(on_batch)) {
  options_.validate();
  for (auto& spec : specs) {
    if (spec.id.empty()) throw Error::invalid_input("avatars: a model id is empty");
    auto entry = std::make_unique<Entry>();
    entry->spec = spec;
    if (!entries_.emplace(spec.id, std::move(entry)).second) {
      throw Error::invalid_input("avatars: model id '" + spec.id + "' is configured twice");
    }
  }
}

Registry::~Registry() {
  stop_all();
}

void Registry::stop_all() {
  std::vector<std::shared_ptr<LoadedModel>> loaded;
  {
    core::MutexLock lock(mutex_);
    stopped_ = true;
    for (auto& [id, entry] : entries_) {
      if (entry->loaded) loaded.push_back(entry->loaded);
    }
  }
  // Outside the lock: a stopping scheduler fails its jobs, whose owners may ask for status.
  for (auto& model : loaded) model->scheduler->stop();
}

void Registry::record_batch(Entry& entry, int size, double ms) {
  {
    core::MutexLock lock(stats_mutex_);
    entry.generator_ms += ms;
    ++entry.generator_runs;
  }
  if (on_batch_) on_batch_(size, ms);
}

// The model's idle frames for silence (avatar.idle: silence), from the cache folder or computed
// on its scheduler, with progress in the log.
std::shared_ptr<const pipeline::SilenceIdle> Registry::build_idle(const LoadedModel& model) {
  std::filesystem::path cache;
  try {
    cache = core::cache_dir();
  } catch (const Error& e) {
    spdlog::warn("model '{}': idle frames are not kept: {}", model.id, e.what());
  }
  core::Stopwatch clock;
  double last_log_ms = 0;
  const auto progress = [&](int done, int total) {
    // At most one line every 2 s, and the last one.
    if (done == total || clock.elapsed_ms() - last_log_ms >= 2000) {
      last_log_ms = clock.elapsed_ms();
      spdlog::info("model '{}': idle frames for silence: {} of {}", model.id, done, total);
    }
  };
  auto idle = pipeline::SilenceIdle::load_or_build(model.avatar, *model.models, *model.scheduler,
                                                   cache, progress);
  if (!idle->cache_note().empty()) spdlog::warn("model '{}': {}", model.id, idle->cache_note());
  if (idle->from_cache()) {
    spdlog::info("model '{}': idle frames for silence read from the cache ({} ms)", model.id,
                 std::lround(clock.elapsed_ms()));
  } else {
    spdlog::info("model '{}': idle frames for silence computed in {} ms ({:.1f} ms a frame)",
                 model.id, std::lround(idle->build_ms()),
                 idle->build_ms() / std::max(1, model.avatar->frame_count()));
  }
  return idle;
}

std::shared_ptr<LoadedModel> Registry::load(Entry& entry) {
  auto model = std::make_shared<LoadedModel>();
  model->id = entry.spec.id;
  Entry* counted = &entry;
  try {
    model->avatar = avatar::Avatar::open(entry.spec.avatar, avatar_);
    if (model->avatar->jpeg_cache_bytes() > 0) {
      model->jpeg_splices = std::make_unique<render::JpegSpliceCache>(
          model->avatar, model->avatar->jpeg_cache_bytes());
    }
    model->models = std::make_unique<infer::Models>(entry.spec.models, infer_);
    model->scheduler = std::make_unique<pipeline::Scheduler>(
        model->models->generator(), scheduler_,
        [this, counted](int size, double ms) { record_batch(*counted, size, ms); });
    // At the largest batch the scheduler makes (smaller ones reuse what it set up); the first
    // live session's deadlines are then planned with this batch time instead of a guess.
    model->scheduler->warm_up();
    if (avatar_.idle == avatar::IdleMode::kSilence) model->silence_idle = build_idle(*model);
  } catch (const Error& e) {
    Error failed = e.with_context("model '" + entry.spec.id + "'");
    spdlog::error("{}: loading failed", failed.what());
    throw failed;
  }
  model->weight_bytes = file_bytes(entry.spec.models / infer::kEncoderFileName) +
                        file_bytes(entry.spec.models / infer::kGeneratorFileName);
  spdlog::info("model '{}': loaded from {} and {} ({} MB)", entry.spec.id,
               core::quote(entry.spec.models.string(), 200),
               core::quote(entry.spec.avatar.string(), 200), model->memory_bytes() >> 20);
  return model;
}

std::vector<std::shared_ptr<LoadedModel>> Registry::evict_for(std::int64_t bytes,
                                                              const std::string& keep) {
  std::vector<std::shared_ptr<LoadedModel>> evicted;
  auto loaded_bytes = [&] {
    std::int64_t total = 0;
    for (auto& [id, e] : entries_) {
      if (e->loaded) total += e->loaded->memory_bytes();
    }
    return total;
  };
  const std::int64_t budget = options_.memory_budget_mb << 20;
  while (loaded_count_locked() + 1 > options_.max_loaded || loaded_bytes() + bytes > budget) {
    Entry* victim = nullptr;
    for (auto& [id, e] : entries_) {
      // A model a request holds (use_count > 1) is never evicted.
      if (!e->loaded || id == keep || e->loaded.use_count() > 1) continue;
      const bool better = victim == nullptr || (options_.policy == EvictionPolicy::kLru
                                                    ? e->last_used < victim->last_used
                                                    : e->uses < victim->uses);
      if (better) victim = e.get();
    }
    if (victim == nullptr) {
      throw Error::resource_exhausted(
          "cannot load another model: " + std::to_string(loaded_count_locked()) + " of " +
          std::to_string(options_.max_loaded) + " loaded and all in use, or the memory budget of " +
          std::to_string(options_.memory_budget_mb) + " MB is reached; retry later");
    }
    evicted.push_back(std::move(victim->loaded));
  }
  return evicted;
}

void Registry::check_configured(const std::string& id) const {
  if (entries_.count(id) != 0) return;
  std::string known;
  for (auto& [k, e] : entries_) {
    if (known.size() > 200) {
      known += ", ...";
      break;
    }
    known += (known.empty() ? "" : ", ") + k;
  }
  throw Error::not_found("model " + core::quote(id) + " is not configured (configured: " + known +
                         ")");
}

Registry::Lease Registry::acquire(const std::string& id) {
  check_configured(id);
  Entry& entry = *entries_.find(id)->second;
  Lease lease;
  {
    core::MutexLock lock(mutex_);
    if (stopped_) throw Error::unavailable("the server is stopping");
    if (entry.loaded) {
      lease.model = entry.loaded;
      lease.was_loaded = true;
    }
  }
  if (!lease.model) {
    core::MutexLock load_lock(entry.load_mutex);
    {
      core::MutexLock lock(mutex_);
      if (entry.loaded) {
        lease.model = entry.loaded;
        lease.was_loaded = true;
      }
    }
    if (!lease.model) {
      core::Stopwatch sw;
      auto model = load(entry);
      core::MutexLock lock(mutex_);
      if (stopped_) {
        lock.unlock();
        model->scheduler->stop();
        throw Error::unavailable("the server is stopping");
      }
      auto evicted = evict_for(model->memory_bytes(), id);
      entry.loaded = model;
      lease.model = model;
      lease.load_ms = sw.elapsed_ms();
      lock.unlock();
      for (auto& old : evicted) {
        spdlog::info(
            "model '{}': unloaded to make room for '{}' (registry.max_loaded, "
            "registry.memory_budget_mb)",
            old->id, id);
        old->scheduler->stop();
      }
    }
  }
  core::MutexLock lock(mutex_);
  ++entry.uses;
  entry.last_used = std::chrono::steady_clock::now();
  entry.last_used_unix_ms = unix_ms_now();
  return lease;
}

void Registry::preload() {
  for (auto& [id, entry] : entries_) {
    if (!entry->spec.preload) continue;
    const Lease lease = acquire(id);
    // A live session on a preloaded model starts at once; its template frames are ready then.
    try {
      const int frames = lease.model->avatar->warm_caches();
      spdlog::info("model '{}': {} of {} template frames decoded", id, frames,
                   lease.model->avatar->frame_count());
    } catch (const Error& e) {
      throw e.with_context("model '" + id + "'");
    }
  }
}

void Registry::unload(const std::string& id) {
  check_configured(id);
  std::shared_ptr<LoadedModel> model;
  {
    core::MutexLock lock(mutex_);
    Entry& entry = *entries_.find(id)->second;
    if (!entry.loaded) return;
    if (entry.loaded.use_count() > 1) {
      throw Error::unavailable("model " + core::quote(id) + " is in use by a request; retry later");
    }
    model = std::move(entry.loaded);
  }
  spdlog::info("model '{}': unloaded", id);
  model->scheduler->stop();
}

void Registry::unload_idle() {
  if (options_.idle_unload_s == 0) return;
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<LoadedModel>> idle;
  {
    core::MutexLock lock(mutex_);
    for (auto& [id, e] : entries_) {
      if (e->loaded && e->loaded.use_count() == 1 &&
          now - e->last_used > std::chrono::seconds(options_.idle_unload_s)) {
        idle.push_back(std::move(e->loaded));
      }
    }
  }
  for (auto& model : idle) {
    spdlog::info("model '{}': unloaded after {} s idle (registry.idle_unload_s)", model->id,
                 options_.idle_unload_s);
    model->scheduler->stop();
  }
}

std::vector<ModelStatus> Registry::status() const {
  core::MutexLock lock(mutex_);
  std::vector<ModelStatus> out;
  for (auto& [id, e] : entries_) {
    ModelStatus s;
    s.id = id;
    s.loaded = e->loaded != nullptr;
    s.memory_mb = e->loaded ? (e->loaded->memory_bytes() + (1 << 20) - 1) >> 20 : 0;
    s.request_count = e->uses;
    {
      core::MutexLock stats_lock(stats_mutex_);
      s.total_inference_ms = e->generator_ms;
      s.generator_runs = e->generator_runs;
    }
    s.last_used_unix_ms = e->last_used_unix_ms;
    s.cache_bytes = e->loaded ? static_cast<std::int64_t>(e->loaded->avatar->cached_bytes()) : 0;
    if (e->loaded) {
      s.provider = e->loaded->models->generator().session().providers().front();
      s.max_batch = e->loaded->scheduler->max_batch();
      s.skipped_frames = static_cast<std::int64_t>(e->loaded->scheduler->stats().skipped);
    }
    out.push_back(s);
  }
  return out;
}

int Registry::loaded_count_locked() const {
  int n = 0;
  for (auto& [id, e] : entries_) n += e->loaded != nullptr;
  return n;
}

int Registry::loaded_count() const {
  core::MutexLock lock(mutex_);
  return loaded_count_locked();
}

std::size_t Registry::queue_depth() const {
  core::MutexLock lock(mutex_);
  std::size_t n = 0;
  for (auto& [id, e] : entries_) {
    if (e->loaded) n += e->loaded->scheduler->queue_depth();
  }
  return n;
}

}  // namespace lipsync::server
