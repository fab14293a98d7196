#include "tts/text_to_speech.h"

#include <espeak-ng/speak_lib.h>

#include <algorithm>

#include "audio/streaming_resampler.h"
#include "core/error.h"
#include "core/mutex.h"

namespace lipsync::tts {
namespace {

core::Mutex g_mutex;                         // espeak-ng's state is global
int g_rate LIPSYNC_GUARDED_BY(g_mutex) = 0;  // its output rate, once initialised
struct Job;
Job* g_job LIPSYNC_GUARDED_BY(g_mutex) = nullptr;  // the synthesis under way

// What one synthesis call collects (reached from espeak's callback through user_data).
struct Job {
  audio::StreamingResampler* resampler = nullptr;
  const std::function<bool(std::vector<float>)>* piece = nullptr;
  std::size_t produced = 0;
  bool stopped = false;
};

// espeak-ng calls this from inside espeak_Synth (synchronous mode), on the caller's thread.
int on_samples(short* wav, int count, espeak_EVENT*) {
  g_mutex.assert_held();  // say() holds it around espeak_Synth
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

// Starts espeak-ng once (g_mutex held). Throws kUnavailable when it cannot start.
void ensure_started() LIPSYNC_REQUIRES(g_mutex) {
  if (g_rate != 0) return;
  const int rate =
      espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 100, nullptr, espeakINITIALIZE_DONT_EXIT);
  if (rate <= 0) {
    throw Error::unavailable(
        "text to speech: espeak-ng did not start (is espeak-ng-data installed?)");
  }
  espeak_SetSynthCallback(&on_samples);
  g_rate = rate;
}

// The voice names espeak-ng takes (g_mutex held, started): its voices' file names ("en",
// "en-US", "de", "gmw/en" -> "en"), sorted. The MBROLA ones are left out (see say()).
std::vector<std::string> voice_names_locked() LIPSYNC_REQUIRES(g_mutex) {
  std::vector<std::string> names;
  for (const espeak_VOICE* const* v = espeak_ListVoices(nullptr); v != nullptr && *v != nullptr;
       ++v) {
    if ((*v)->identifier == nullptr) continue;
    std::string id = (*v)->identifier;
    if (id.rfind("mb/", 0) == 0) continue;
    names.push_back(id.substr(id.rfind('/') + 1));
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace

std::vector<std::string> voices() {
  core::MutexLock lock(g_mutex);
  ensure_started();
  return voice_names_locked();
}

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
  core::MutexLock lock(g_mutex);
  ensure_started();
  if (espeak_SetVoiceByName(voice_name.c_str()) != EE_OK) {
    const std::vector<std::string> names = voice_names_locked();
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    throw Error::invalid_input("voice: espeak-ng has no voice '" + voice_name + "'; its " +
                               std::to_string(names.size()) + " voices are " + list);
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
