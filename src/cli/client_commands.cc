// `lipsync client` (the reference streaming client: copy it to write your own) and
// `lipsync loadtest` (many concurrent requests against a running server).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <optional>
#include <thread>

#include "audio/audio_file.h"
#include "audio/video_frames.h"
#include "cli/commands.h"
#include "cli/demo_assets.h"
#include "client/channel.h"
#include "client/live_client.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/mutex.h"
#include "core/stopwatch.h"
#include "core/text.h"
#include "lipsync/v1/lipsync.grpc.pb.h"
#include "monolithic.grpc.pb.h"
#include "render/mp4_writer.h"
#include "server/grpc_status.h"

namespace lipsync::cli {
namespace {

namespace fs = std::filesystem;
using lipsync::v1::StreamConfig;
using lipsync::v1::StreamRequest;
using lipsync::v1::StreamResponse;

Error from_status(const grpc::Status& status, const std::string& target) {
  const std::string message = "server " + target + ": " + status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return Error::invalid_input(message);
    case grpc::StatusCode::NOT_FOUND:
      return Error::not_found(message);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return Error::resource_exhausted(message);
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
      return Error::unavailable(message);
    default:
      return Error::internal(message);
  }
}

struct StreamOutcome {
  grpc::Status status;
  int frames = 0;
  double first_frame_ms = -1;
  double total_ms = 0;
};

// Streams 16 kHz float samples in chunks; hands each frame to on_frame (may be empty).
StreamOutcome stream_audio(lipsync::v1::LipSync::Stub& stub, const std::string& token,
                           const std::string& model, std::span<const float> samples,
                           int chunk_samples, StreamConfig::Format format, int start_frame,
                           const std::function<void(const StreamResponse&)>& on_frame) {
  grpc::ClientContext context;
  client::add_token(context, token);
  auto call = stub.Stream(&context);
  StreamOutcome outcome;
  core::Stopwatch clock;
  std::thread reader([&] {
    StreamResponse response;
    while (call->Read(&response)) {
      if (outcome.frames == 0) outcome.first_frame_ms = clock.elapsed_ms();
      ++outcome.frames;
      if (on_frame) on_frame(response);
    }
  });
  StreamRequest config;
  config.mutable_config()->set_model_id(model);
  config.mutable_config()->set_format(format);
  config.mutable_config()->set_encoding(StreamConfig::ENCODING_F32LE);
  config.mutable_config()->set_start_frame(start_frame);
  bool open = call->Write(config);
  for (std::size_t pos = 0; open && pos < samples.size(); pos += chunk_samples) {
    const std::size_t n = std::min<std::size_t>(chunk_samples, samples.size() - pos);
    StreamRequest audio;
    audio.set_audio(reinterpret_cast<const char*>(samples.data() + pos), n * sizeof(float));
    open = call->Write(audio);  // blocks while the server is busy: paced by the server
  }
  if (open) {
    StreamRequest end;
    end.set_end(true);
    call->Write(end);
  }
  call->WritesDone();
  reader.join();
  outcome.status = call->Finish();
  outcome.total_ms = clock.elapsed_ms();
  return outcome;
}

struct ClientArgs {
  std::string target = "127.0.0.1:50051";
  int wait_s = 30;
  std::string token;  // --token
  std::string model = "demo";
  std::string audio;
  std::string output;
  int chunk_ms = 40;
  std::string format = "png";
  int start_frame = 0;
};

// The client's output folder: frames are written as they arrive; if the stream fails, the frames
// written are removed again, and the folder too when this client created it.
class FrameFolder {
 public:
  FrameFolder(fs::path dir, std::string ext) : dir_(std::move(dir)), ext_(std::move(ext)) {
    std::error_code ec;
    if (fs::exists(dir_, ec) && !fs::is_directory(dir_, ec)) {
      throw Error::invalid_input("output " + dir_.string() + ": exists and is not a folder");
    }
    created_ = !fs::exists(dir_, ec);
    fs::create_directories(dir_, ec);
    if (!fs::is_directory(dir_, ec)) {
      throw Error::invalid_input("output " + dir_.string() + ": cannot create the folder");
    }
  }
  ~FrameFolder() {
    if (kept_) return;
    std::error_code ec;
    for (const auto& p : written_) fs::remove(p, ec);
    if (created_) fs::remove_all(dir_, ec);
  }
  void write(int index, const std::string& bytes) {
    char name[32];
    std::snprintf(name, sizeof name, "%05d", index);
    const fs::path path = dir_ / (name + ext_);
    std::ofstream out(path, std::ios::binary);
    out << bytes;
    if (!out) throw Error::invalid_input("output: cannot write " + path.string());
    written_.push_back(path);
  }
  void keep() { kept_ = true; }

 private:
  fs::path dir_;
  std::string ext_;
  bool created_ = false;
  bool kept_ = false;
  std::vector<fs::path> written_;
};

void run_client(const ClientArgs& a) {
  const std::vector<float> samples =
      audio::load_audio_file(a.audio.empty() ? demo_speech_path() : fs::path(a.audio));
  if (a.format != "png" && a.format != "jpeg") {
    throw Error::invalid_input("--format " + a.format + ": expected png or jpeg");
  }
  // OUT.mp4: one video with the audio; anything else: a folder of frames.
  const bool mp4 = core::to_lower_ascii(fs::path(a.output).extension().string()) == ".mp4";
  std::optional<FrameFolder> folder;
  std::unique_ptr<render::Mp4Writer> video;
  if (!mp4) folder.emplace(a.output, a.format == "png" ? ".png" : ".jpg");
  auto stub = lipsync::v1::LipSync::NewStub(client::open_channel(a.target, a.wait_s));
  std::string write_error;
  int next_index = 0;
  auto add_to_video = [&](const StreamResponse& r) {
    if (r.index() != next_index) {
      throw Error::internal("frame " + std::to_string(r.index()) + " arrived where " +
                            std::to_string(next_index) + " was due");
    }
    ++next_index;
    const std::string& bytes = r.frame();
    const cv::Mat image = cv::imdecode(
        cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data())),
        cv::IMREAD_COLOR);
    if (image.empty())
      throw Error::internal("frame " + std::to_string(r.index()) + ": undecodable");
    if (!video) {
      video = std::make_unique<render::Mp4Writer>(a.output, image.cols, image.rows, true,
                                                  render::OutputOptions{});
      video->add_audio(samples);  // cut or padded to the frames at the end
    }
    video->write(image);
  };
  const auto outcome =
      stream_audio(*stub, a.token, a.model, samples, std::max(1, a.chunk_ms * 16),
                   a.format == "png" ? StreamConfig::FORMAT_PNG : StreamConfig::FORMAT_JPEG,
                   a.start_frame, [&](const StreamResponse& r) {
                     if (!write_error.empty()) return;
                     try {
                       if (mp4) {
                         add_to_video(r);
                       } else {
                         folder->write(r.index(), r.frame());
                       }
                     } catch (const Error& e) {
                       write_error = e.message();
                     }
                   });
  if (!outcome.status.ok()) throw from_status(outcome.status, a.target);
  if (!write_error.empty()) throw Error::invalid_input("output " + a.output + ": " + write_error);
  if (mp4) {
    if (!video) throw Error::invalid_input("output " + a.output + ": the server sent no frames");
    video->finish();
  } else {
    folder->keep();
  }
  std::cout << core::json_text({{"frames", outcome.frames},
                                {"first_frame_ms", outcome.first_frame_ms},
                                {"total_ms", outcome.total_ms},
                                {"audio_seconds", audio::seconds_for_samples(
                                                      static_cast<std::int64_t>(samples.size()))},
                                {"output", a.output}})
            << "\n";
}

struct LoadArgs {
  std::string target = "127.0.0.1:50051";
  int wait_s = 30;
  std::string token;  // --token
  std::string model = "demo";
  int requests = 100;
  int concurrency = 4;
  int batch = 25;
  bool stream = false;
  int live = 0;         // > 0: that many live sessions at once
  double seconds = 30;  // each live session's length
};

struct LiveClientArgs {
  client::LiveClientOptions options;
  std::string script;
};

void run_live_client(const LiveClientArgs& a) {
  if (a.options.output.empty()) throw Error::invalid_input("-o: an output folder is required");
  const auto script = client::load_live_script(a.script);
  const client::LiveReport report = client::run_live_session(a.options, script);
  std::cout << client::to_json(report) << "\n";
  if (!report.status.ok()) throw from_status(report.status, a.options.target);
}

// The script of one load-test session: the bundled clip, a pause, the clip again, interrupted
// half-way, then the clip once more until the end.
std::vector<client::LiveAction> load_test_script(double seconds) {
  client::LiveAction say;
  say.audio = audio::load_audio_file(demo_speech_path());
  const int clip_ms = static_cast<int>(
      audio::seconds_for_samples(static_cast<std::int64_t>(say.audio.size())) * 1000);
  std::vector<client::LiveAction> script;
  int at = 500;
  while (at + clip_ms < seconds * 1000) {
    say.at_ms = at;
    script.push_back(say);
    if (script.size() == 2) {
      client::LiveAction interrupt;
      interrupt.kind = client::LiveAction::Kind::kInterrupt;
      interrupt.at_ms = at + clip_ms / 2;
      script.push_back(interrupt);
    }
    at += clip_ms + 2000;
  }
  return script;
}

void run_live_loadtest(const LoadArgs& a) {
  if (a.live < 1 || a.seconds < 2) {
    throw Error::invalid_input("--live must be at least 1 and --seconds at least 2");
  }
  const auto script = load_test_script(a.seconds);
  std::vector<client::LiveReport> reports(static_cast<std::size_t>(a.live));
  std::vector<std::thread> sessions;
  for (int i = 0; i < a.live; ++i) {
    sessions.emplace_back([&, i] {
      client::LiveClientOptions o;
      o.target = a.target;
      o.wait_s = a.wait_s;
      o.token = a.token;
      o.model = a.model;
      o.format = "jpeg";
      o.seconds = a.seconds;
      reports[static_cast<std::size_t>(i)] = client::run_live_session(o, script);
    });
  }
  for (auto& t : sessions) t.join();
  std::vector<double> speech, interrupts, jitter50, jitter99;
  long long frames = 0, late = 0, underruns = 0;
  nlohmann::json per_session = nlohmann::json::array();
  grpc::Status first_error;
  for (const auto& r : reports) {
    per_session.push_back(nlohmann::json::parse(client::to_json(r)));
    frames += r.frames;
    late += r.late_frames;
    underruns += r.underruns;
    speech.insert(speech.end(), r.speech_latency_ms.begin(), r.speech_latency_ms.end());
    interrupts.insert(interrupts.end(), r.interrupt_latency_ms.begin(),
                      r.interrupt_latency_ms.end());
    jitter50.push_back(r.jitter_p50_ms);
    jitter99.push_back(r.jitter_p99_ms);
    if (!r.status.ok() && first_error.ok()) first_error = r.status;
  }
  const auto pct = client::percentile;
  std::cout << core::json_text(
                   {{"live_sessions", a.live},
                    {"seconds", a.seconds},
                    {"frames", frames},
                    {"late_frames", late},
                    {"underruns", underruns},
                    {"jitter_ms", {{"p50", pct(jitter50, 0.5)}, {"p99", pct(jitter99, 0.5)}}},
                    {"speech_latency_ms", {{"p50", pct(speech, 0.5)}, {"p99", pct(speech, 0.99)}}},
                    {"interrupt_latency_ms",
                     {{"p50", pct(interrupts, 0.5)}, {"p99", pct(interrupts, 0.99)}}},
                    {"sessions", per_session}})
            << "\n";
  if (!first_error.ok()) throw from_status(first_error, a.target);
}

// What the load test's workers record, under one lock.
struct LoadResults {
  core::Mutex mutex;
  std::vector<double> latencies LIPSYNC_GUARDED_BY(mutex);  // of the calls that succeeded
  // By code name: count, first message.
  std::map<std::string, std::pair<int, std::string>> errors LIPSYNC_GUARDED_BY(mutex);
  grpc::Status first_error LIPSYNC_GUARDED_BY(mutex);
  long long frames LIPSYNC_GUARDED_BY(mutex) = 0;

  void add(const grpc::Status& status, double ms, int frames_got) {
    core::MutexLock lock(mutex);
    if (status.ok()) {
      latencies.push_back(ms);
      frames += frames_got;
      return;
    }
    auto& [count, message] = errors[server::status_code_name(status.error_code())];
    if (count++ == 0) message = status.error_message();
    if (first_error.ok()) first_error = status;
  }

  // Latency at percentile p.
  double percentile(double p) const LIPSYNC_REQUIRES(mutex) {
    return client::percentile(latencies, p);
  }
};

// One request of the load test: an InferBatchComposite call, or a whole stream.
struct LoadRequest {
  const LoadArgs& args;
  std::vector<float> samples;  // audio for exactly args.batch frames
  std::string bytes;
  std::unique_ptr<monolithic::MonolithicService::Stub> mono;
  std::unique_ptr<lipsync::v1::LipSync::Stub> streaming;

  LoadRequest(const LoadArgs& a, const std::shared_ptr<grpc::Channel>& channel)
      : args(a),
        mono(monolithic::MonolithicService::NewStub(channel)),
        streaming(lipsync::v1::LipSync::NewStub(channel)) {
    // Cut from the bundled clip (repeated when needed).
    const std::vector<float> clip = audio::load_audio_file(demo_speech_path());
    samples.resize(audio::min_samples_for_clip_frames(a.batch));
    for (std::size_t i = 0; i < samples.size(); ++i) samples[i] = clip[i % clip.size()];
    bytes.assign(reinterpret_cast<const char*>(samples.data()), samples.size() * sizeof(float));
  }

  // Returns the status and the frames received.
  std::pair<grpc::Status, int> run() const {
    if (args.stream) {
      const auto outcome = stream_audio(*streaming, args.token, args.model, samples,
                                        audio::kSamplesPerFrame, StreamConfig::FORMAT_JPEG, 0, {});
      return {outcome.status, outcome.frames};
    }
    monolithic::CompositeBatchRequest request;
    request.set_model_id(args.model);
    request.set_raw_audio(bytes);
    request.set_batch_size(args.batch);
    monolithic::CompositeBatchResponse response;
    grpc::ClientContext context;
    client::add_token(context, args.token);
    const grpc::Status status = mono->InferBatchComposite(&context, request, &response);
    return {status, response.composited_frames_size()};
  }
};

void run_loadtest(const LoadArgs& a) {
  if (a.live > 0) {
    run_live_loadtest(a);
    return;
  }
  if (a.requests < 1 || a.concurrency < 1 || a.batch < 1) {
    throw Error::invalid_input("--requests, --concurrency and --batch must be at least 1");
  }
  const LoadRequest request(a, client::open_channel(a.target, a.wait_s));
  LoadResults results;
  std::atomic<int> next{0};
  core::Stopwatch clock;
  std::vector<std::thread> workers;
  for (int w = 0; w < a.concurrency; ++w) {
    workers.emplace_back([&] {
      while (next++ < a.requests) {
        core::Stopwatch sw;
        const auto [status, frames] = request.run();
        results.add(status, sw.elapsed_ms(), frames);
      }
    });
  }
  for (auto& t : workers) t.join();
  const double seconds = clock.elapsed_ms() / 1000.0;
  core::MutexLock lock(results.mutex);  // the workers are done; this only says so
  std::sort(results.latencies.begin(), results.latencies.end());
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [code, entry] : results.errors) {
    errors[code] = {{"count", entry.first}, {"first_message", entry.second}};
  }
  std::cout << core::json_text(
                   {{"requests", a.requests},
                    {"completed", results.latencies.size()},
                    {"errors", errors},
                    {"concurrency", a.concurrency},
                    {"batch", a.batch},
                    {"stream", a.stream},
                    {"seconds", seconds},
                    {"frames", results.frames},
                    {"frames_per_second", static_cast<double>(results.frames) / seconds},
                    {"latency_ms",
                     {{"p50", results.percentile(0.5)},
                      {"p95", results.percentile(0.95)},
                      {"p99", results.percentile(0.99)}}}})
            << "\n";
  if (!results.first_error.ok()) {
    const Error e = from_status(results.first_error, a.target);
    const int failed = a.requests - static_cast<int>(results.latencies.size());
    throw Error(e.code(), std::to_string(failed) + " of " + std::to_string(a.requests) +
                              " requests failed; the first: " + e.message());
  }
}

// --token, defaulting to $LIPSYNC_API_TOKEN.
void add_token_option(CLI::App& cmd, std::string& token) {
  token = client::token_from_environment();
  cmd.add_option("--token", token,
                 "Bearer token for a server with server.api_token (default: $LIPSYNC_API_TOKEN)");
}

// --wait-s, which every client command takes.
void add_wait_option(CLI::App& cmd, int& wait_s) {
  cmd.add_option("--wait-s", wait_s,
                 "Seconds to wait for the server to answer (it may still be starting); 0: fail at "
                 "once")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));
}

}  // namespace

void add_client_commands(CLI::App& app) {
  {
    auto a = std::make_shared<ClientArgs>();
    CLI::App* cmd = app.add_subcommand(
        "client", "Stream an audio file to a server and write the frames it returns");
    cmd->add_option("--target", a->target, "Server host:port")->capture_default_str();
    add_wait_option(*cmd, a->wait_s);
    add_token_option(*cmd, a->token);
    cmd->add_option("--model", a->model, "Model id")->capture_default_str();
    cmd->add_option("--audio", a->audio, "Audio file (default: the bundled demo clip)");
    cmd->add_option("-o,--output", a->output,
                    "OUT.mp4 (the video with the audio) or a folder for the frames (%05d.png or "
                    ".jpg)")
        ->required();
    cmd->add_option("--chunk-ms", a->chunk_ms, "Audio per message")
        ->capture_default_str()
        ->check(CLI::Range(1, 3600000));
    cmd->add_option("--format", a->format, "png or jpeg")->capture_default_str();
    cmd->add_option("--start-frame", a->start_frame, "Template frame the walk starts from")
        ->capture_default_str();
    cmd->callback([a] { run_client(*a); });
  }
  {
    auto a = std::make_shared<LoadArgs>();
    CLI::App* cmd = app.add_subcommand(
        "loadtest", "Concurrent requests against a server; prints throughput and latency");
    cmd->add_option("--target", a->target, "Server host:port")->capture_default_str();
    add_wait_option(*cmd, a->wait_s);
    add_token_option(*cmd, a->token);
    cmd->add_option("--model", a->model, "Model id")->capture_default_str();
    cmd->add_option("--requests", a->requests, "Requests in all")->capture_default_str();
    cmd->add_option("--concurrency", a->concurrency, "Requests at once")->capture_default_str();
    cmd->add_option("--batch", a->batch, "Frames per request")->capture_default_str();
    cmd->add_flag("--stream", a->stream, "Use the Stream API instead of InferBatchComposite");
    cmd->add_option("--live", a->live,
                    "Run this many live sessions at once instead (each speaks the bundled clip "
                    "with pauses and one interrupt)")
        ->check(CLI::Range(1, 1000));
    cmd->add_option("--seconds", a->seconds, "Length of each live session")->capture_default_str();
    cmd->callback([a] { run_loadtest(*a); });
  }
  {
    auto a = std::make_shared<LiveClientArgs>();
    CLI::App* cmd = app.add_subcommand(
        "live-client", "Play a script against a live session and record what a viewer sees");
    cmd->add_option("--target", a->options.target, "Server host:port")->capture_default_str();
    add_wait_option(*cmd, a->options.wait_s);
    add_token_option(*cmd, a->options.token);
    cmd->add_option("--model", a->options.model, "Model id")->capture_default_str();
    cmd->add_option("--script", a->script,
                    "JSON list of {\"at_ms\": N, \"say\": FILE | \"interrupt\": true | "
                    "\"end\": true}")
        ->required();
    cmd->add_option("-o,--output", a->options.output,
                    "Folder for %06d.png/.jpg, audio.wav, session.mp4 and frames.jsonl")
        ->required();
    cmd->add_option("--format", a->options.format, "png, jpeg or raw")->capture_default_str();
    cmd->add_option("--start-frame", a->options.start_frame, "Template frame the walk starts from")
        ->capture_default_str();
    cmd->add_option("--latency-ms", a->options.latency_ms, "Speech latency (0: the server's)")
        ->capture_default_str();
    cmd->add_option("--seconds", a->options.seconds,
                    "End the session at this time if the script has not (0: at the script's end)")
        ->capture_default_str();
    cmd->add_option("--session", a->options.session,
                    "Attach to this existing session (say, one made over HTTP) instead of making "
                    "one; through a gateway the call names its instance (lipsync-instance)");
    cmd->callback([a] { run_live_client(*a); });
  }
}

}  // namespace lipsync::cli
