// Telling an MP3 from bytes that only look like one, before libsndfile hands them to libmpg123:
// given data that is not MPEG audio, libmpg123 searches it for frames and prints "Note: Trying to
// resync..." on stderr (a server's log) before libsndfile gives up with a misleading "possibly a
// pipe". MPEG audio is a run of frames, each with a 4-byte header whose fields give the frame's
// length (ISO/IEC 11172-3 2.4.2.3, 13818-3): the data is taken as MPEG audio when, after an
// optional ID3v2 tag, a valid header is followed by another where the first frame ends.
// Thread contract: stateless functions.
#pragma once

#include <cstddef>
#include <optional>
#include <span>

namespace lipsync::audio {

// The length of the MPEG audio frame whose 4-byte header starts `header`, or nullopt when the
// bytes are not a valid header (a reserved version, layer, bit rate or sample rate). A
// free-format frame (bit rate index 0) has no length from its header: 0.
std::optional<std::size_t> mpeg_frame_length(std::span<const std::byte, 4> header);

// The bytes of an ID3v2 tag at the start of `data` (its 10-byte header and its size, and a
// footer), or 0 when there is none.
std::size_t id3v2_size(std::span<const std::byte> data);

// True when `data` (the start of a file, or all of it) begins, after an optional ID3v2 tag and
// up to 4 KiB of padding, with two consecutive MPEG audio frames (or one frame that ends the
// data, or a free-format frame).
bool starts_like_mpeg_audio(std::span<const std::byte> data);

// True when the data claims to be MPEG audio: it starts with an ID3v2 tag or an MPEG sync word.
bool claims_mpeg_audio(std::span<const std::byte> data);

}  // namespace lipsync::audio
