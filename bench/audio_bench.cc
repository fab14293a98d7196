// Google Benchmark for the audio front end: mel of 60 s on 1 and 2 threads, and window packing
// sequential vs parallel at several batch sizes (the parallel speed-up and the grain choice).
// Run: build/release/bench/audio_bench
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "audio/mel_spectrogram.h"
#include "audio/mel_windows.h"
#include "core/task_arena.h"

namespace {

using lipsync::audio::AudioOptions;
using lipsync::audio::Mel;
using lipsync::audio::MelSpectrogram;
using lipsync::audio::MelWindows;

std::vector<float> speech_like(double seconds) {
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.0f, 0.1f);
  std::vector<float> out(static_cast<std::size_t>(seconds * 16000));
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] =
        noise(rng) * static_cast<float>(0.5 + 0.5 * std::sin(i * 2 * 3.14159265 * 4 / 16000.0));
  }
  return out;
}

const std::vector<float>& sixty_seconds() {
  static const std::vector<float> samples = speech_like(60.0);
  return samples;
}

void BM_Mel60s(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const lipsync::core::TaskArena arena(threads);
  AudioOptions options;
  options.arena = &arena;
  options.parallel_mel_extraction = threads > 1;
  const MelSpectrogram mel_spectrogram;
  for (auto _ : state) benchmark::DoNotOptimize(mel_spectrogram.compute(sixty_seconds(), options));
  state.counters["threads"] = threads;
}
BENCHMARK(BM_Mel60s)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// range(0): batch size; range(1): 0 sequential, 1 parallel on 2 threads with grain 1.
void BM_PackWindows(benchmark::State& state) {
  static const Mel mel = [] {
    AudioOptions o;
    o.parallel_mel_extraction = false;
    return MelSpectrogram().compute(sixty_seconds(), o);
  }();
  const int batch = static_cast<int>(state.range(0));
  const lipsync::core::TaskArena arena(2);
  AudioOptions options;
  options.parallel_mel_extraction = state.range(1) != 0;
  options.arena = &arena;
  options.pack_windows_per_task = 1;
  const MelWindows windows(mel, options);
  std::vector<float> out(static_cast<std::size_t>(batch) * MelWindows::kPackedWindowSize);
  for (auto _ : state) {
    windows.pack_encoder_batch(0, batch, out);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_PackWindows)
    ->ArgsProduct({{25, 64, 256, 1024, 1497}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
