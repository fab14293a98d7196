#include "server/registry.h"

#include <algorithm>

#include "core/error.h"
#include "core/stopwatch.h"

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

void RegistryOptions::validate() const {
  if (max_loaded < 1 || max_loaded > 1000) {
    throw Error::invalid_input("registry.max_loaded: " + std::to_string(max_loaded) +
                               " is out of range; expected 1 to 1000");
  }
  if (memory_budget_mb < 1) {
    throw Error::invalid_input("registry.memory_budget_mb: " + std::to_string(memory_budget_mb) +
                               " is out of range; expected 1 or more");
  }
  if (idle_unload_s < 0 || idle_unload_s > 604800) {
    throw Error::invalid_input("registry.idle_unload_s: " + std::to_string(idle_unload_s) +
                               " is out of range; expected 0 (never) to 604800");
  }
}

std::string_view to_string(EvictionPolicy policy) {
  return policy == EvictionPolicy::kLru ? "lru" : "lfu";
}

std::int64_t LoadedModel::memory_bytes() const {
  return weight_bytes + static_cast<std::int64_t>(avatar->cached_bytes());
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
  std::lock_guard lock(mutex_);
  for (auto& [id, entry] : entries_) {
    if (entry->loaded) entry->loaded->scheduler->stop();
  }
}

std::shared_ptr<LoadedModel> Registry::load(Entry& entry) const {
  auto model = std::make_shared<LoadedModel>();
  model->id = entry.spec.id;
  try {
    model->avatar = avatar::Avatar::open(entry.spec.avatar, avatar_);
    model->models = std::make_unique<infer::Models>(entry.spec.models, infer_);
  } catch (const Error& e) {
    throw e.with_context("model '" + entry.spec.id + "'");
  }
  model->weight_bytes = file_bytes(entry.spec.models / infer::kEncoderFileName) +
                        file_bytes(entry.spec.models / infer::kGeneratorFileName);
  model->scheduler =
      std::make_unique<pipeline::Scheduler>(model->models->generator(), scheduler_, on_batch_);
  return model;
}

void Registry::evict_for(std::int64_t bytes, const std::string& keep) {
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
    victim->loaded->scheduler->stop();
    victim->loaded.reset();
  }
}

void Registry::check_configured(const std::string& id) const {
  if (entries_.count(id) != 0) return;
  std::string known;
  for (auto& [k, e] : entries_) known += (known.empty() ? "" : ", ") + k;
  throw Error::not_found("model '" + id + "' is not configured (configured: " + known + ")");
}

Registry::Lease Registry::acquire(const std::string& id) {
  check_configured(id);
  Entry& entry = *entries_.find(id)->second;
  Lease lease;
  {
    std::lock_guard lock(mutex_);
    if (entry.loaded) {
      lease.model = entry.loaded;
      lease.was_loaded = true;
    }
  }
  if (!lease.model) {
    std::lock_guard load_lock(entry.load_mutex);
    {
      std::lock_guard lock(mutex_);
      if (entry.loaded) {
        lease.model = entry.loaded;
        lease.was_loaded = true;
      }
    }
    if (!lease.model) {
      core::Stopwatch sw;
      auto model = load(entry);
      std::lock_guard lock(mutex_);
      evict_for(model->memory_bytes(), id);
      entry.loaded = model;
      lease.model = model;
      lease.load_ms = sw.elapsed_ms();
    }
  }
  std::lock_guard lock(mutex_);
  ++entry.uses;
  entry.last_used = std::chrono::steady_clock::now();
  entry.last_used_unix_ms = unix_ms_now();
  return lease;
}

void Registry::preload() {
  for (auto& [id, entry] : entries_) {
    if (entry->spec.preload) (void)acquire(id);
  }
}

void Registry::unload(const std::string& id) {
  check_configured(id);
  std::lock_guard lock(mutex_);
  Entry& entry = *entries_.find(id)->second;
  if (!entry.loaded) return;
  if (entry.loaded.use_count() > 1) {
    throw Error::unavailable("model '" + id + "' is in use by a request; retry later");
  }
  entry.loaded->scheduler->stop();
  entry.loaded.reset();
}

void Registry::record(const std::string& id, double inference_ms) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  std::lock_guard lock(mutex_);
  it->second->inference_ms += inference_ms;
}

void Registry::unload_idle() {
  if (options_.idle_unload_s == 0) return;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  for (auto& [id, e] : entries_) {
    if (e->loaded && e->loaded.use_count() == 1 &&
        now - e->last_used > std::chrono::seconds(options_.idle_unload_s)) {
      e->loaded->scheduler->stop();
      e->loaded.reset();
    }
  }
}

std::vector<ModelStatus> Registry::status() const {
  std::lock_guard lock(mutex_);
  std::vector<ModelStatus> out;
  for (auto& [id, e] : entries_) {
    ModelStatus s;
    s.id = id;
    s.loaded = e->loaded != nullptr;
    s.memory_mb = e->loaded ? (e->loaded->memory_bytes() + (1 << 20) - 1) >> 20 : 0;
    s.request_count = e->uses;
    s.total_inference_ms = e->inference_ms;
    s.last_used_unix_ms = e->last_used_unix_ms;
    s.cache_bytes = e->loaded ? static_cast<std::int64_t>(e->loaded->avatar->cached_bytes()) : 0;
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
  std::lock_guard lock(mutex_);
  return loaded_count_locked();
}

std::size_t Registry::queue_depth() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (auto& [id, e] : entries_) {
    if (e->loaded) n += e->loaded->scheduler->queue_depth();
  }
  return n;
}

}  // namespace lipsync::server
