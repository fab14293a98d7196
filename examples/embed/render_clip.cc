// Embedding lipsync.cpp: render a speech file on an avatar into an MP4, with the library alone.
//   render_clip MODELS_DIR AVATAR_DIR SPEECH.wav OUT.mp4
// Every lipsync call reports failure as a lipsync::Error (code + message naming the input).
#include <cstdio>

#include "audio/audio_file.h"
#include "avatar/avatar.h"
#include "core/error.h"
#include "infer/models.h"
#include "pipeline/frame_sinks.h"
#include "pipeline/offline_renderer.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MODELS_DIR AVATAR_DIR SPEECH.wav OUT.mp4\n", argv[0]);
    return 2;
  }
  try {
    const lipsync::infer::Models models(argv[1], lipsync::infer::InferOptions{});
    const auto avatar = lipsync::avatar::Avatar::open(argv[2], lipsync::avatar::AvatarOptions{});
    const std::vector<float> speech = lipsync::audio::load_audio_file(argv[3]);  // 16 kHz mono
    const lipsync::pipeline::OfflineRenderer renderer(avatar, models,
                                                      lipsync::pipeline::RenderOptions{});
    lipsync::pipeline::Mp4Sink video(argv[4], avatar->width(), avatar->height(),
                                     lipsync::render::OutputOptions{});
    const auto stats = renderer.render(speech, video);  // the sink gets the audio as well
    std::printf("%d frames in %.2f s -> %s\n", stats.frames, stats.seconds, argv[4]);
    return 0;
  } catch (const lipsync::Error& e) {
    std::fprintf(stderr, "render_clip: %s\n", e.what());
    return 1;
  }
}
