#include "client/live_client.h"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <thread>

#include "audio/audio_file.h"
#include "audio/video_frames.h"
#include "client/channel.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/mutex.h"
#include "core/stopwatch.h"
#include "lipsync/v1/lipsync.grpc.pb.h"
#include "render/mp4_writer.h"

namespace lipsync::client {
namespace {

namespace fs = std::filesystem;
using lipsync::v1::LiveFrame;
using lipsync::v1::LiveRequest;
using lipsync::v1::StreamConfig;

// A 16 kHz mono 16-bit WAV file.
void write_wav(const fs::path& path, const std::vector<std::int16_t>& samples) {
  std::ofstream out(path, std::ios::binary);
  const auto put32 = [&](std::uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  const auto put16 = [&](std::uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
  const auto data = static_cast<std::uint32_t>(samples.size() * 2);
  out.write("RIFF", 4);
  put32(36 + data);
  out.write("WAVEfmt ", 8);
  put32(16);
  put16(1);  // PCM
  put16(1);  // mono
  put32(audio::kSampleRateHz);
  put32(audio::kSampleRateHz * 2);
  put16(2);
  put16(16);
  out.write("data", 4);
  put32(data);
  out.write(reinterpret_cast<const char*>(samples.data()), data);
  if (!out) throw Error::invalid_input("output: cannot write " + path.string());
}

// Writes a session's files from its own thread, so that reading frames never waits for disk.
class SessionFiles {
 public:
  SessionFiles(fs::path dir, std::string format)
      : dir_(std::move(dir)), format_(std::move(format)) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (!fs::is_directory(dir_, ec)) {
      throw Error::invalid_input("output " + dir_.string() + ": cannot create the folder");
    }
    jsonl_.open(dir_ / "frames.jsonl");
    thread_ = std::thread([this] { loop(); });
  }
  ~SessionFiles() { close(); }

  void add(LiveFrameRecord record) {
    core::MutexLock lock(mutex_);
    queue_.push_back(std::move(record));
    wake_.notify_one();
  }
  // Finishes the files; returns the first error, if any.
  std::string close() {
    {
      core::MutexLock lock(mutex_);
      if (closed_) return error_;
      closed_ = true;
    }
    wake_.notify_one();
    thread_.join();
    try {
      write_wav(dir_ / "audio.wav", audio_);
      if (mp4_) mp4_->finish();
    } catch (const std::exception& e) {
      if (error_.empty()) error_ = e.what();
    }
    return error_;
  }

 private:
  void loop() {
    while (true) {
      LiveFrameRecord r;
      {
        core::MutexLock lock(mutex_);
        wake_.wait(lock, [&]() LIPSYNC_REQUIRES(mutex_) { return closed_ || !queue_.empty(); });
        if (queue_.empty()) return;
        r = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        write(r);
      } catch (const std::exception& e) {
        if (error_.empty()) error_ = e.what();
      }
    }
  }

  void write(const LiveFrameRecord& r) {
    const std::string ext = format_ == "jpeg" ? ".jpg" : format_ == "raw" ? ".bgr" : ".png";
    char name[32];
    std::snprintf(name, sizeof name, "%06lld", static_cast<long long>(r.index));
    std::ofstream(dir_ / (name + ext), std::ios::binary) << r.picture;
    jsonl_ << core::json_text({{"index", r.index},
                               {"pts_ms", r.pts_ms},
                               {"state", r.state},
                               {"late", r.late},
                               {"underrun", r.underrun},
                               {"utterance", r.utterance},
                               {"sample", r.sample},
                               {"receive_ms", r.receive_ms}})
           << "\n";
    audio_.insert(audio_.end(), r.samples.begin(), r.samples.end());
    if (format_ != "raw" && !r.picture.empty()) {
      const cv::Mat image =
          cv::imdecode(std::vector<uchar>(r.picture.begin(), r.picture.end()), cv::IMREAD_COLOR);
      if (image.empty()) return;
      if (!mp4_) {
        mp4_ = std::make_unique<render::Mp4Writer>(dir_ / "session.mp4", image.cols, image.rows,
                                                   true, render::OutputOptions{});
      }
      std::vector<float> samples(r.samples.size());
      for (std::size_t i = 0; i < samples.size(); ++i) samples[i] = r.samples[i] / 32768.0f;
      mp4_->add_audio(samples);
      mp4_->write(image);
    }
  }

  fs::path dir_;
  std::string format_;
  std::ofstream jsonl_;
  std::vector<std::int16_t> audio_;
  std::unique_ptr<render::Mp4Writer> mp4_;
  core::Mutex mutex_;
  core::CondVar wake_;
  std::deque<LiveFrameRecord> queue_ LIPSYNC_GUARDED_BY(mutex_);
  bool closed_ LIPSYNC_GUARDED_BY(mutex_) = false;
  std::string error_;  // the loop thread's until close() has joined it
  std::thread thread_;
};

StreamConfig::Format format_of(const std::string& name) {
  if (name == "png") return StreamConfig::FORMAT_PNG;
  if (name == "jpeg") return StreamConfig::FORMAT_JPEG;
  if (name == "raw") return StreamConfig::FORMAT_RAW;
  throw Error::invalid_input("--format " + name + ": expected png, jpeg or raw");
}

// What the two threads of a session share.
struct Timeline {
  mutable core::Mutex mutex;
  std::vector<double> say_sent_ms LIPSYNC_GUARDED_BY(mutex);  // first speech byte of each utterance
  std::vector<double> interrupt_sent_ms LIPSYNC_GUARDED_BY(mutex);  // each interrupt
};

void compute_summary(LiveReport& report, const std::vector<LiveFrameRecord>& frames,
                     const Timeline& t) {
  core::MutexLock lock(t.mutex);  // the session's threads are done; this only says so
  std::vector<double> offsets;
  bool last_underrun = false;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const auto& f = frames[i];
    if (f.index != static_cast<std::int64_t>(i) || f.pts_ms != audio::frame_pts_ms(f.index)) {
      report.contiguous = false;
    }
    report.late_frames += f.late;
    if (f.late) {
      report.late_idle += f.state == LiveFrame::IDLE;
      report.late_speaking += f.state == LiveFrame::SPEAKING;
      if (report.first_late < 0) report.first_late = f.index;
    }
    report.underruns += f.underrun && !last_underrun;
    last_underrun = f.underrun;
    offsets.push_back(f.receive_ms - static_cast<double>(f.pts_ms));
  }
  report.frames = static_cast<std::int64_t>(frames.size());
  if (!offsets.empty()) {
    const double best = *std::min_element(offsets.begin(), offsets.end());
    for (double& o : offsets) o -= best;
    report.jitter_p50_ms = percentile(offsets, 0.5);
    report.jitter_p99_ms = percentile(offsets, 0.99);
  }
  for (std::size_t u = 0; u < t.say_sent_ms.size(); ++u) {
    for (const auto& f : frames) {
      if (f.state == LiveFrame::SPEAKING && f.utterance == static_cast<int>(u)) {
        report.speech_latency_ms.push_back(f.receive_ms - t.say_sent_ms[u]);
        break;
      }
    }
  }
  for (double sent : t.interrupt_sent_ms) {
    for (const auto& f : frames) {
      if (f.receive_ms >= sent && f.state != LiveFrame::SPEAKING) {
        report.interrupt_latency_ms.push_back(f.receive_ms - sent);
        break;
      }
    }
  }
}

// Plays the script on the call (this thread): sleeps to each action's time and does it.
void play_script(grpc::ClientReaderWriter<LiveRequest, LiveFrame>& call, const LiveClientOptions& o,
                 const std::vector<LiveAction>& script, const core::Stopwatch& clock, Timeline& t) {
  const auto sleep_until = [&](double ms) {
    const double left = ms - clock.elapsed_ms();
    if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(left));
  };
  const std::size_t chunk = static_cast<std::size_t>(std::max(1, o.chunk_ms)) *
                            static_cast<std::size_t>(audio::kSampleRateHz / 1000);
  for (const LiveAction& a : script) {
    sleep_until(a.at_ms);
    LiveRequest r;
    if (a.kind == LiveAction::Kind::kEnd) {
      call.WritesDone();
      return;
    }
    if (a.kind == LiveAction::Kind::kInterrupt) {
      {
        core::MutexLock lock(t.mutex);
        t.interrupt_sent_ms.push_back(clock.elapsed_ms());
      }
      r.set_interrupt(true);
      if (!call.Write(r)) return;
      continue;
    }
    {
      core::MutexLock lock(t.mutex);
      t.say_sent_ms.push_back(clock.elapsed_ms());
    }
    for (std::size_t pos = 0; pos < a.audio.size(); pos += chunk) {
      const std::size_t n = std::min(chunk, a.audio.size() - pos);
      r.set_speech(reinterpret_cast<const char*>(a.audio.data() + pos), n * sizeof(float));
      if (!call.Write(r)) return;  // blocks while the server's speech buffer is full
    }
    LiveRequest end;
    end.set_segment_end(true);
    if (!call.Write(end)) return;
  }
  if (o.seconds > 0) sleep_until(o.seconds * 1000.0);
  call.WritesDone();
}

}  // namespace

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5))];
}

std::string token_from_environment() {
  const char* token = std::getenv("LIPSYNC_API_TOKEN");
  return token != nullptr ? token : "";
}

void add_token(grpc::ClientContext& context, const std::string& token) {
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
}

std::vector<LiveAction> load_live_script(const fs::path& path) {
  const std::string where = "script " + path.string();
  std::ifstream in(path);
  if (!in) throw Error::not_found(where + ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error::invalid_input(where + ": not valid JSON: " + e.what());
  }
  if (!j.is_array()) throw Error::invalid_input(where + ": expected a list of actions");
  std::vector<LiveAction> actions;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const auto& e = j[i];
    const std::string at = where + ": action " + std::to_string(i);
    if (!e.is_object() || !e.contains("at_ms") || !e["at_ms"].is_number_integer() ||
        e["at_ms"].get<long long>() < 0) {
      throw Error::invalid_input(at + ": expected {\"at_ms\": N >= 0, ...}");
    }
    LiveAction a;
    a.at_ms = e["at_ms"].get<int>();
    if (e.contains("say") && e["say"].is_string()) {
      a.kind = LiveAction::Kind::kSay;
      fs::path file = e["say"].get<std::string>();
      if (file.is_relative()) file = path.parent_path() / file;
      a.file = file;
      a.audio = audio::load_audio_file(file);
    } else if (e.value("interrupt", false)) {
      a.kind = LiveAction::Kind::kInterrupt;
    } else if (e.value("end", false)) {
      a.kind = LiveAction::Kind::kEnd;
    } else {
      throw Error::invalid_input(at + ": expected \"say\", \"interrupt\": true or \"end\": true");
    }
    actions.push_back(std::move(a));
  }
  std::stable_sort(actions.begin(), actions.end(),
                   [](const LiveAction& a, const LiveAction& b) { return a.at_ms < b.at_ms; });
  return actions;
}

LiveReport run_live_session(const LiveClientOptions& o, const std::vector<LiveAction>& script) {
  const StreamConfig::Format format = format_of(o.format);
  std::unique_ptr<SessionFiles> files;
  if (!o.output.empty()) files = std::make_unique<SessionFiles>(o.output, o.format);
  grpc::ChannelArguments args;
  if (o.receive_window_kb > 0) {
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, o.receive_window_kb << 10);
  }
  auto stub = lipsync::v1::LipSync::NewStub(open_channel(o.target, o.wait_s, args));
  grpc::ClientContext context;
  add_token(context, o.token);
  if (const auto dot = o.session.find('.'); dot != std::string::npos) {
    context.AddMetadata(std::string(kInstanceMetadata), o.session.substr(0, dot));
  }
  auto call = stub->Live(&context);
  LiveReport report;
  LiveRequest config;
  config.mutable_config()->set_session_id(o.session);
  config.mutable_config()->set_model_id(o.model);
  config.mutable_config()->set_start_frame(o.start_frame);
  config.mutable_config()->set_format(format);
  config.mutable_config()->set_encoding(StreamConfig::ENCODING_F32LE);
  config.mutable_config()->set_latency_ms(o.latency_ms);
  const core::Stopwatch clock;
  Timeline timeline;
  std::vector<LiveFrameRecord> frames;
  std::thread reader([&] {
    LiveFrame f;
    std::string last_picture;
    while (call->Read(&f)) {
      LiveFrameRecord r;
      r.receive_ms = clock.elapsed_ms();
      r.index = f.index();
      r.pts_ms = f.pts_ms();
      r.state = f.state();
      r.late = f.late();
      r.underrun = f.underrun();
      r.utterance = f.utterance();
      r.sample = f.sample();
      r.samples.resize(f.samples().size() / 2);
      std::memcpy(r.samples.data(), f.samples().data(), r.samples.size() * 2);
      if (f.index() == 0) report.latency_ms = f.latency_ms();
      if (!f.frame().empty()) last_picture = f.frame();
      if (o.keep_frames || files) r.picture = last_picture;
      if (files) files->add(r);
      if (!o.keep_frames) r.picture.clear();
      frames.push_back(std::move(r));
      if (o.read_delay_ms > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(o.read_delay_ms));
    }
  });
  if (call->Write(config)) play_script(*call, o, script, clock, timeline);
  reader.join();
  report.status = call->Finish();
  compute_summary(report, frames, timeline);
  if (o.keep_frames) report.records = std::move(frames);
  if (files) {
    const std::string error = files->close();
    if (!error.empty()) throw Error::invalid_input("output: " + error);
  }
  return report;
}

std::string to_json(const LiveReport& r) {
  return core::json_text({{"frames", r.frames},
                          {"late_frames", r.late_frames},
                          {"late_idle", r.late_idle},
                          {"late_speaking", r.late_speaking},
                          {"first_late", r.first_late},
                          {"underruns", r.underruns},
                          {"contiguous", r.contiguous},
                          {"latency_ms", r.latency_ms},
                          {"speech_latency_ms", r.speech_latency_ms},
                          {"interrupt_latency_ms", r.interrupt_latency_ms},
                          {"jitter_ms", {{"p50", r.jitter_p50_ms}, {"p99", r.jitter_p99_ms}}},
                          {"status", r.status.ok() ? "OK" : r.status.error_message()}});
}

}  // namespace lipsync::client
