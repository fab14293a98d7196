#include "tts/text_to_speech.h"

#include <espeak-ng/speak_lib.h>

#include <mutex>

#include "audio/streaming_resampler.h"
#include "core/error.h"

namespace lipsync::tts {
namespace {

std::mutex g_mutex;  // espeak-ng's state is global
int g_rate = 0;      // its output rate, once initialised (guarded)
struct Job;
Job* g_job = nullptr;  // the synthesis under way (guarded: the callback runs inside it)

// What one synthesis call collects (reached from espeak's callback through user_data).
struct Job {
  audio::StreamingResampler* resampler = nullptr;
  const std::function<bool(std::vector<float>)>* piece = nullptr;
  std::size_t produced = 0;
  bool stopped = false;
};

// espeak-ng calls this from inside espeak_Synth (synchronous mode), on the caller's thread.
int on_samples(short* wav, int count, espeak_EVENT*) {
  Job* job = g_job;
  if (!job || job->stopped) return job ? 1 : 0;
  if (!wav || count <= 0) return 0;
  std::vector<float> in(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) in[static_cast<std::size_t>(i)] = wav[i] / 32768.0f;
  std::vector<float> out = job->resampler->process(in);
  if (out.empty()) return 0;
  job->produced += out.size();
  if (!(*job->piece)(std::move(out))) job->stopped = true;
  return job->stopped ? 1 : 0;
}

}  // namespace

std::size_t say(std::string_view text, std::string_view voice,
                const std::function<bool(std::vector<float>)>& piece) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    throw Error::invalid_input("text: nothing to say (the text is empty)");
  }
  if (text.size() > kMaxTextBytes) {
    throw Error::invalid_input("text: " + std::to_string(text.size()) +
                               " bytes is too long; at most " + std::to_string(kMaxTextBytes));
  }
  const std::string voice_name(voice.empty() ? "en" : voice);
  if (voice_name.size() > 40 ||
      voice_name.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+") !=
          std::string::npos) {
    throw Error::invalid_input("voice: '" + voice_name.substr(0, 40) + "' is not a voice name");
  }
  // espeak-ng runs the MBROLA program for its mb-* voices (a separate program, not installed,
  // that writes to stderr); those voices are not offered.
  if (voice_name.rfind("mb-", 0) == 0 || voice_name.rfind("mb/", 0) == 0) {
    throw Error::invalid_input("voice: '" + voice_name +
                               "' is an MBROLA voice, which lipsync does not use; pick an "
                               "espeak-ng voice such as en, en-us, de or fr");
  }
  std::lock_guard lock(g_mutex);
  if (g_rate == 0) {
    const int rate =
        espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 100, nullptr, espeakINITIALIZE_DONT_EXIT);
    if (rate <= 0) {
      throw Error::unavailable(
          "text to speech: espeak-ng did not start (is espeak-ng-data installed?)");
    }
    espeak_SetSynthCallback(&on_samples);
    g_rate = rate;
  }
  if (espeak_SetVoiceByName(voice_name.c_str()) != EE_OK) {
    throw Error::invalid_input("voice: espeak-ng has no voice '" + voice_name + "'");
  }
  audio::StreamingResampler resampler(g_rate, 16000);
  Job job{&resampler, &piece, 0, false};
  const std::string z(text);
  g_job = &job;
  const espeak_ERROR e = espeak_Synth(z.c_str(), z.size() + 1, 0, POS_CHARACTER, 0,
                                      espeakCHARS_UTF8, nullptr, nullptr);
  g_job = nullptr;
  if (e != EE_OK) throw Error::unavailable("text to speech: espeak-ng failed to synthesise");
  if (!job.stopped) {
    std::vector<float> tail = resampler.finish();
    if (!tail.empty()) {
      job.produced += tail.size();
      piece(std::move(tail));
    }
  }
  return job.produced;
}

}  // namespace lipsync::tts
