// Text to speech through espeak-ng (Debian's libespeak-ng and its embedded voices): text in,
// 16 kHz mono float speech out, handed over in pieces as it is synthesised (about 100 ms each),
// so a live session can start speaking before the whole sentence exists.
// Thread contract: any thread. espeak-ng is one global synthesiser: calls run one at a time.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace lipsync::tts {

// The longest text say() takes, in bytes.
inline constexpr std::size_t kMaxTextBytes = 4000;

// Synthesises `text` (UTF-8) with `voice` (an espeak-ng voice name such as "en", "en-us",
// "de"; empty means "en"), calling `piece` with each piece of 16 kHz samples; `piece` returns
// false to stop early. Returns the samples produced. Throws Error::Code::kInvalidInput for empty
// or over-long text or an unknown voice, kUnavailable when espeak-ng cannot start.
std::size_t say(std::string_view text, std::string_view voice,
                const std::function<bool(std::vector<float>)>& piece);

// The voice names say() takes ("en", "en-US", "de", ...), sorted. Throws kUnavailable when
// espeak-ng cannot start.
std::vector<std::string> voices();

}  // namespace lipsync::tts
