// LiveClient: the reference client of lipsync.v1.LipSync/Live (copy it to write your own). It
// plays a script of timed actions against a server (say a file, interrupt, end), receives one
// frame per tick, and measures what a viewer would see: late frames, underruns, jitter, the
// latency of each utterance's first speech frame and of each interrupt. With an output folder it
// writes every frame, the session's audio (WAV), an MP4 as a viewer saw it, and one JSON line per
// frame.
//
// Script (JSON): [{"at_ms": 500, "say": "speech.wav"}, {"at_ms": 4000, "interrupt": true},
//                 {"at_ms": 9000, "end": true}]; "say" streams the file as one utterance (then
// segment_end) as fast as the server reads it.
// Thread contract: run() from one thread; it uses two of its own while it runs.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lipsync::client {

// The value at fraction p (0..1) of `values`, nearest rank (0 when empty); the one rule for
// every percentile the clients and load tests print.
double percentile(std::vector<double> values, double p);

struct LiveAction {
  enum class Kind { kSay, kInterrupt, kEnd };
  int at_ms = 0;
  Kind kind = Kind::kSay;
  std::filesystem::path file;  // kSay
  std::vector<float> audio;    // kSay: 16 kHz mono (filled by load or by the caller)
};

// Reads a script; "say" paths are relative to the script's folder. Throws Error::Code::
// kInvalidInput naming the entry for a bad one, kNotFound for a missing file.
std::vector<LiveAction> load_live_script(const std::filesystem::path& path);

// $LIPSYNC_API_TOKEN, or "" (the clients' default --token).
std::string token_from_environment();
// Sends `token` as `authorization: Bearer TOKEN` metadata (nothing when it is empty).
void add_token(grpc::ClientContext& context, const std::string& token);

// The gRPC metadata key that names the instance a call's session is on (a gateway routes by it).
inline constexpr std::string_view kInstanceMetadata = "lipsync-instance";

struct LiveClientOptions {
  std::string target = "127.0.0.1:50051";
  int wait_s = 30;    // wait this long for the server to answer (client::open_channel); 0: don't
  std::string token;  // server.api_token of the server, if it has one
  std::string model = "demo";
  std::string format = "png";  // png, jpeg or raw
  int start_frame = 0;
  // Attach to this session instead of making one. The call's metadata then names its instance
  // (`lipsync-instance`: the id up to its first dot), which a gateway routes by
  // (deploy/nginx/gateway.sh).
  std::string session;
  int latency_ms = 0;            // 0: the server's default
  int chunk_ms = 100;            // speech per message
  double seconds = 0;            // > 0: half-close at this time if the script has not ended
  std::filesystem::path output;  // empty: keep nothing on disk
  bool keep_frames = false;      // keep every frame's record and picture in the result (tests)
  int read_delay_ms = 0;         // sleep this long after each frame read (a slow viewer)
  // > 0: the HTTP/2 receive window, fixed (no BDP growth), to imitate a slow or narrow network;
  // 0: gRPC's default.
  int receive_window_kb = 0;
};

// One received frame.
struct LiveFrameRecord {
  std::int64_t index = 0;
  std::int64_t pts_ms = 0;
  int state = 0;  // lipsync.v1.LiveFrame.State
  bool late = false;
  bool underrun = false;
  int utterance = -1;
  std::int64_t sample = -1;
  double receive_ms = 0;  // since the session started
  std::vector<std::int16_t> samples;
  std::string picture;  // only with keep_frames (the previous one for a late frame)
};

struct LiveReport {
  grpc::Status status;
  int latency_ms = 0;  // what the server reported
  std::int64_t frames = 0;
  std::int64_t late_frames = 0;
  std::int64_t late_idle = 0;             // of those: IDLE frames (e.g. the first ones)
  std::int64_t late_speaking = 0;         // SPEAKING frames (the generator or encoder fell behind)
  std::int64_t first_late = -1;           // index of the first late frame
  std::int64_t underruns = 0;             // times the speech ran dry
  bool contiguous = true;                 // indices 0, 1, 2, ... and pts = 40 x index
  std::vector<double> speech_latency_ms;  // per utterance: first byte sent -> first SPEAKING
  std::vector<double> interrupt_latency_ms;  // per interrupt: sent -> first non-SPEAKING frame
  double jitter_p50_ms = 0;                  // arrival minus (pts + the best arrival offset)
  double jitter_p99_ms = 0;
  std::vector<LiveFrameRecord> records;  // with keep_frames
};

// Runs one session. Throws Error::Code::kInvalidInput for bad options or unwritable output.
LiveReport run_live_session(const LiveClientOptions& options,
                            const std::vector<LiveAction>& script);

// The summary a report prints (`lipsync live-client`, `lipsync loadtest --live`).
std::string to_json(const LiveReport& report);

}  // namespace lipsync::client
