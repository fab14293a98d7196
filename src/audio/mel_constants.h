// The fixed parameters of the SyncTalk_2D audio front end (REFERENCE.md sections 1-3). Models
// were trained with exactly these values, so they are constants, not options.
// Thread contract: constants only.
#pragma once

namespace lipsync::audio {

inline constexpr int kSampleRateHz = 16000;   // REFERENCE.md §1: model input rate
inline constexpr double kPreemphasis = 0.97;  // §2.1: y[n] = x[n] - 0.97 x[n-1]
inline constexpr int kFftSize = 800;          // §2.3: n_fft = win_length = 50 ms
inline constexpr int kHopSamples = 200;       // §2.3: 12.5 ms hop, 80 mel frames per second
inline constexpr int kCenterPadSamples = kFftSize / 2;  // §2.2: zeros before and after
inline constexpr int kFftBins = kFftSize / 2 + 1;       // §2.5: 401 magnitude bins
inline constexpr int kMelBands = 80;                    // §2.6
inline constexpr double kMelFminHz = 55.0;              // §2.6
inline constexpr double kMelFmaxHz = 7600.0;            // §2.6
inline constexpr float kMinMagnitude = 1e-5f;           // §2.7: floor before log10
inline constexpr float kRefLevelDb = 20.0f;             // §2.7: S = 20 log10(max(mel, 1e-5)) - 20
inline constexpr float kMinLevelDb = -100.0f;           // §2.8
inline constexpr float kMaxAbsValue = 4.0f;             // §2.8: output range [-4, 4]
inline constexpr int kWindowFrames = 16;                // §3: mel rows per encoder window
inline constexpr double kMelFramesPerSecond = 80.0;     // §3: 16000 / 200
inline constexpr double kVideoFps = 25.0;               // §3: one window per 40 ms video frame
inline constexpr int kMinSamples = 3000;                // §1: 1 + 3000/200 = 16 frames, one window

}  // namespace lipsync::audio
