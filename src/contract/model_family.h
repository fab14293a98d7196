// The tensor contract of the SyncTalk_2D model family (REFERENCE.md §4, §5): names, shapes and
// sizes of the audio encoder's and the generator's inputs and outputs. Models of other families
// would get their own header like this one.
#pragma once

#include <cstddef>
#include <string_view>

namespace lipsync::contract {

// Audio encoder: mel_spectrogram [B,1,80,16] -> audio_features [B,512].
inline constexpr std::string_view kEncoderInputName = "mel_spectrogram";
inline constexpr std::string_view kEncoderOutputName = "audio_features";
inline constexpr int kFeatureSize = 512;  // floats per encoder window

// Generator: input [B,6,320,320] + audio [B,32,16,16] -> output [B,3,320,320].
inline constexpr std::string_view kGeneratorImageName = "input";
inline constexpr std::string_view kGeneratorAudioName = "audio";
inline constexpr std::string_view kGeneratorOutputName = "output";
inline constexpr int kRoiSize = 320;          // side of the generator's square ROI
inline constexpr int kImageChannels = 6;      // ROI BGR + masked ROI BGR
inline constexpr int kOutputChannels = 3;     // BGR
inline constexpr int kAudioChannels = 32;     // 16 feature rows x 2 halves
inline constexpr int kAudioGrid = 16;         // each half of a row as 16 x 16
inline constexpr int kAudioContextRows = 16;  // feature rows per frame: i-8 .. i+7

inline constexpr std::size_t kImageInputSize =
    static_cast<std::size_t>(kImageChannels) * kRoiSize * kRoiSize;
inline constexpr std::size_t kAudioInputSize =
    static_cast<std::size_t>(kAudioChannels) * kAudioGrid * kAudioGrid;
inline constexpr std::size_t kOutputSize =
    static_cast<std::size_t>(kOutputChannels) * kRoiSize * kRoiSize;
static_assert(kAudioInputSize == static_cast<std::size_t>(kAudioContextRows) * kFeatureSize);

}  // namespace lipsync::contract
