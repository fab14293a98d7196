// Live sessions against the real server on loopback, driven by the reference live client's code:
// idle frames are the template frames, a scripted session has one frame per tick with the right
// states, its speech frames are the offline pipeline's and its samples the input speech at the
// positions it reports, an underrun inserts silence, a slow reader gets late frames on an unmoved
// timeline, and eight sessions run at once. Timing bounds are generous: the figures belong to the
// load test.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <thread>

#include "audio/audio_file.h"
#include "audio/video_frames.h"
#include "avatar/avatar_import.h"
#include "avatar/template_walk.h"
#include "client/live_client.h"
#include "core/file_util.h"
#include "infer/models.h"
#include "lipsync/v1/lipsync.grpc.pb.h"
#include "pipeline/frame_producer.h"
#include "pipeline/silence_idle.h"
#include "render/image_encoder.h"
#include "server/server.h"
#include "support/http_client.h"
#include "support/test_data.h"
#include "support/test_models.h"
#include "support/test_server.h"

namespace lipsync {
namespace {

using client::LiveAction;
using client::LiveFrameRecord;
using lipsync::v1::LiveFrame;

constexpr int kTemplates = 9;

class LiveTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    avatar::write_demo_avatar(*dir_ / "avatar", kTemplates, 320, 240);
    speech_ = new std::vector<float>(
        audio::load_audio_file(testing::testdata("reference/speech_a_en.wav")));
  }
  static void TearDownTestSuite() {
    delete speech_;
    delete dir_;
  }

  void start(const std::function<void(server::ServerConfig&)>& edit = {}) {
    server_.reset();
    server_ = testing::start_test_server(*dir_ / "avatar", edit);
  }
  void SetUp() override { start(); }

  // The idle frame the server shows on template frame t (avatar.idle: silence): the SilenceIdle
  // of the demo models and this avatar, read from the cache folder the server wrote.
  cv::Mat idle_frame(int t) {
    if (!idle_) {
      const infer::Models models(testing::demo_models(), testing::two_threads());
      pipeline::Scheduler scheduler(models.generator(), {4, 1});
      idle_ = pipeline::SilenceIdle::load_or_build(avatar::Avatar::open(*dir_ / "avatar", {}),
                                                   models, scheduler, core::cache_dir());
      EXPECT_TRUE(idle_->from_cache()) << "the server did not keep its idle frames";
    }
    cv::Mat frame;
    idle_->idle_frame(t, render::BlendOptions{}, frame);
    return frame;
  }
  std::shared_ptr<const pipeline::SilenceIdle> idle_;

  client::LiveClientOptions options() const {
    client::LiveClientOptions o;
    o.target = "127.0.0.1:" + std::to_string(server_->grpc_port());
    o.format = "png";
    o.keep_frames = true;
    return o;
  }

  static LiveAction say(int at_ms, std::vector<float> audio) {
    LiveAction a;
    a.at_ms = at_ms;
    a.audio = std::move(audio);
    return a;
  }
  static LiveAction at(int at_ms, LiveAction::Kind kind) {
    LiveAction a;
    a.at_ms = at_ms;
    a.kind = kind;
    return a;
  }
  // The reference speech from `first` for `count` samples.
  static std::vector<float> speech(std::size_t first, std::size_t count) {
    return {speech_->begin() + static_cast<std::ptrdiff_t>(first),
            speech_->begin() + static_cast<std::ptrdiff_t>(first + count)};
  }

  // The offline pipeline's PNG frames for `audio` on the template frames of ticks start, ...
  std::vector<std::vector<std::uint8_t>> offline(const std::vector<float>& audio,
                                                 std::int64_t start) {
    const auto avatar = avatar::Avatar::open(*dir_ / "avatar", {});
    const infer::Models models(testing::demo_models(), testing::two_threads());
    pipeline::Scheduler scheduler(models.generator(), {4, 0});
    core::WorkerPool workers(2);
    struct Sink : pipeline::FrameConsumer {
      void on_frame(pipeline::ProducedFrame f) override {
        std::lock_guard lock(mutex);
        frames.push_back(std::move(f.encoded));
        if (auto p = producer.lock()) p->release(1);
      }
      void on_finished() override {
        std::lock_guard lock(mutex);
        done = true;
        cv.notify_all();
      }
      void on_failed(const Error&) override { on_finished(); }
      std::weak_ptr<pipeline::FrameProducer> producer;
      std::mutex mutex;
      std::condition_variable cv;
      bool done = false;
      std::vector<std::vector<std::uint8_t>> frames;
    };
    auto sink = std::make_shared<Sink>();
    pipeline::ProducerSettings s;
    s.walk_offset = static_cast<int>(start);
    s.encoding = pipeline::FrameEncoding::kPng;
    s.keep_image = false;
    auto p = pipeline::FrameProducer::from_clip(
        {avatar, &models.encoder(), &scheduler, &workers}, s,
        pipeline::encode_clip_features(audio, models.encoder(), {}), sink);
    sink->producer = p;
    p->start();
    std::unique_lock lock(sink->mutex);
    sink->cv.wait(lock, [&] { return sink->done; });
    auto frames = std::move(sink->frames);
    lock.unlock();
    scheduler.stop();
    return frames;
  }

  std::string metrics() { return testing::http_get(server_->http_port(), "/metrics").body; }

  static testing::TempDir* dir_;
  static std::vector<float>* speech_;
  std::unique_ptr<server::Server> server_;
};
testing::TempDir* LiveTest::dir_ = nullptr;
std::vector<float>* LiveTest::speech_ = nullptr;

// avatar.idle: silence (the default): the frames made for silence, the avatar listening;
// avatar.idle: template: the template frames themselves.
TEST_F(LiveTest, IdleFramesAreTheSilentFramesOrTheTemplateFramesOnePerTick) {
  const auto avatar = avatar::Avatar::open(*dir_ / "avatar", {});
  for (const bool silence : {true, false}) {
    if (!silence)
      start([](server::ServerConfig& c) { c.avatar.idle = avatar::IdleMode::kTemplate; });
    const auto r = client::run_live_session(options(), {at(1200, LiveAction::Kind::kEnd)});
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_TRUE(r.contiguous);
    EXPECT_GT(r.latency_ms, 0);
    ASSERT_GE(r.records.size(), 20u);
    int compared = 0;
    for (const LiveFrameRecord& f : r.records) {
      EXPECT_EQ(f.state, LiveFrame::IDLE) << f.index;
      EXPECT_EQ(f.utterance, -1);
      for (std::int16_t v : f.samples) ASSERT_EQ(v, 0) << "frame " << f.index;
      if (f.late) continue;
      const int t = avatar::template_frame_for(static_cast<int>(f.index), kTemplates, 0);
      const auto png = render::encode_png(silence ? idle_frame(t) : *avatar->frame(t));
      ASSERT_EQ(f.picture, std::string(png.begin(), png.end()))
          << (silence ? "silence" : "template") << ": frame " << f.index;
      ++compared;
    }
    EXPECT_GE(compared, 15);
  }
}

TEST_F(LiveTest, ATwoUtteranceSessionWithAPauseAndAnInterrupt) {
  const auto first = speech(0, 48000);       // 3 s
  const auto second = speech(20000, 48000);  // 3 s, interrupted half-way
  const auto r = client::run_live_session(
      options(), {say(300, first), say(5000, second), at(6800, LiveAction::Kind::kInterrupt),
                  at(8000, LiveAction::Kind::kEnd)});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_TRUE(r.contiguous) << "not one frame per tick";
  const auto& frames = r.records;
  std::cout << "[ live ] " << client::to_json(r) << "\n";
  // States: idle, utterance 0, idle (the pause), utterance 1, fading (the interrupt), idle.
  std::vector<std::pair<int, int>> runs;  // (state, utterance)
  for (const auto& f : frames) {
    if (runs.empty() || runs.back() != std::pair{f.state, f.utterance}) {
      runs.emplace_back(f.state, f.utterance);
    }
  }
  const std::vector<std::pair<int, int>> expected{{LiveFrame::IDLE, -1},   {LiveFrame::SPEAKING, 0},
                                                  {LiveFrame::IDLE, -1},   {LiveFrame::SPEAKING, 1},
                                                  {LiveFrame::FADING, -1}, {LiveFrame::IDLE, -1}};
  ASSERT_EQ(runs, expected);
  // Utterance 0 plays for its clip's frame count, back to back.
  const int f0 = audio::clip_frames_for_samples(first.size());
  std::int64_t start0 = -1, start1 = -1;
  int count0 = 0;
  for (const auto& f : frames) {
    if (f.utterance == 0) {
      if (start0 < 0) start0 = f.index;
      ++count0;
    }
    if (f.utterance == 1 && start1 < 0) start1 = f.index;
  }
  EXPECT_EQ(count0, f0);
  ASSERT_EQ(r.speech_latency_ms.size(), 2u);
  ASSERT_EQ(r.interrupt_latency_ms.size(), 1u);
  // Each frame's samples are the input speech at the position it reports, sample-exact (the
  // input is 16-bit, so the round trip is exact).
  const std::vector<const std::vector<float>*> inputs{&first, &second};
  for (const auto& f : frames) {
    if (f.state != LiveFrame::SPEAKING) continue;
    ASSERT_GE(f.sample, 0);
    const auto& in = *inputs[static_cast<std::size_t>(f.utterance)];
    for (int i = 0; i < audio::kSamplesPerFrame; ++i) {
      const std::size_t at_sample =
          static_cast<std::size_t>(f.sample) + static_cast<std::size_t>(i);
      const float v = at_sample < in.size() ? in[at_sample] : 0.0f;
      ASSERT_EQ(f.samples[static_cast<std::size_t>(i)],
                static_cast<std::int16_t>(std::lround(v * 32768.0f)))
          << "frame " << f.index << " sample " << i;
    }
    EXPECT_EQ(f.sample, audio::samples_for_frames(f.index - (f.utterance == 0 ? start0 : start1)));
  }
  // Speech frames (past the cross-fade) equal the offline pipeline's for the same audio and
  // template frames.
  const auto expected0 = offline(first, start0);
  ASSERT_EQ(static_cast<int>(expected0.size()), f0);
  int equal = 0, late = 0;
  for (const auto& f : frames) {
    if (f.utterance != 0) continue;
    const auto j = static_cast<std::size_t>(f.index - start0);
    if (j < 3 || j + 3 >= expected0.size()) continue;  // cross-faded
    if (f.late) {
      ++late;
      continue;
    }
    const auto& e = expected0[j];
    ASSERT_EQ(f.picture, std::string(e.begin(), e.end())) << "speech frame " << j;
    ++equal;
  }
  EXPECT_GE(equal, f0 - 6 - 10) << late << " late";
  // The cross-faded ones are the idle frame (the face made for silence) with the offline face
  // blended into its crop rect: weight (j + 1) / 4 for the first three, (frames - j) / 4 for
  // the last three. No template mouth shows.
  const auto avatar = avatar::Avatar::open(*dir_ / "avatar", {});
  int blended = 0;
  for (const auto& f : frames) {
    if (f.utterance != 0 || f.late) continue;
    const auto j = static_cast<int>(f.index - start0);
    const int n = pipeline::LiveOptions{}.crossfade_frames;
    if (j >= n && j < f0 - n) continue;
    const double a = static_cast<double>(std::min(j + 1, f0 - j)) / (n + 1);
    const int t = avatar::template_frame_for(static_cast<int>(f.index), kTemplates, 0);
    const cv::Mat face = cv::imdecode(expected0[static_cast<std::size_t>(j)], cv::IMREAD_COLOR);
    const cv::Mat idle = idle_frame(t);
    cv::Mat want = idle.clone();
    const cv::Rect box = avatar::as_cv_rect(avatar->crop_rect(t));
    cv::addWeighted(face(box), a, idle(box), 1.0 - a, 0.0, want(box));
    const auto png = render::encode_png(want);
    ASSERT_EQ(f.picture, std::string(png.begin(), png.end())) << "cross-faded frame " << j;
    ++blended;
  }
  EXPECT_GE(blended, 3);
  // The interrupt: the frame after it is the start of the fade, with silence: the blended
  // frames (live.interrupt_fade_frames), after a hold of the last speech picture when the
  // interrupt came too close to its tick to draw one.
  const int blends = pipeline::LiveOptions{}.interrupt_fade_frames;
  std::size_t first_fading = 0;
  int fading = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const auto& f = frames[i];
    if (f.state != LiveFrame::FADING) continue;
    for (std::int16_t v : f.samples) ASSERT_EQ(v, 0);
    ASSERT_FALSE(f.late);
    if (fading++ == 0) first_fading = i;
  }
  ASSERT_GT(first_fading, 0u);
  ASSERT_EQ(frames[first_fading - 1].state, LiveFrame::SPEAKING);
  // With the hold, the first fading frame repeats the last speech picture; the blends do not.
  ASSERT_TRUE(fading == blends || fading == blends + 1) << fading << " fading frames";
  const bool held = fading == blends + 1;
  EXPECT_EQ(frames[first_fading].picture == frames[first_fading - 1].picture, held);
  for (std::size_t i = first_fading + (held ? 1 : 0); i < first_fading + fading; ++i) {
    EXPECT_NE(frames[i].picture, frames[i - 1].picture) << "fading frame " << frames[i].index;
  }
  const std::string m = metrics();
  EXPECT_NE(m.find("lipsync_live_interrupts_total 1"), std::string::npos) << m;
  EXPECT_NE(m.find("lipsync_live_frames_total{state=\"fading\"} " + std::to_string(fading)),
            std::string::npos)
      << m;
}

TEST_F(LiveTest, AnUnderrunInsertsSilenceAndTheTimelineGoesOn) {
  // Half a second of speech, then nothing for two seconds, then the rest of the utterance.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = lipsync::v1::LipSync::NewStub(channel);
  grpc::ClientContext context;
  auto call = stub->Live(&context);
  lipsync::v1::LiveRequest config;
  config.mutable_config()->set_model_id("demo");
  config.mutable_config()->set_encoding(lipsync::v1::StreamConfig::ENCODING_F32LE);
  config.mutable_config()->set_latency_ms(400);
  std::vector<LiveFrame> frames;
  std::thread reader([&] {
    LiveFrame f;
    while (call->Read(&f)) frames.push_back(f);
  });
  ASSERT_TRUE(call->Write(config));
  const auto send = [&](std::size_t first, std::size_t count) {
    lipsync::v1::LiveRequest r;
    r.set_speech(reinterpret_cast<const char*>(speech_->data() + first), count * sizeof(float));
    ASSERT_TRUE(call->Write(r));
  };
  send(0, 8000);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  send(8000, 24000);
  lipsync::v1::LiveRequest end;
  end.set_segment_end(true);
  call->Write(end);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  call->WritesDone();
  reader.join();
  ASSERT_TRUE(call->Finish().ok());
  int silent = 0;
  std::int64_t resumed_at = -1;
  bool in_gap = false;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i].index(), static_cast<std::int64_t>(i));
    if (frames[i].underrun()) {
      in_gap = true;
      ++silent;
      EXPECT_EQ(frames[i].state(), LiveFrame::SPEAKING);
      for (std::size_t b = 0; b < frames[i].samples().size(); ++b) {
        ASSERT_EQ(frames[i].samples()[b], 0);
      }
    } else if (in_gap && resumed_at < 0) {
      resumed_at = frames[i].sample();
    }
  }
  EXPECT_GT(silent, 10) << "no silence was inserted for a two-second gap";
  // The speech goes on where it stopped: the first frame after the gap shows input sample
  // 8000 or just after it.
  EXPECT_GE(resumed_at, 8000 - audio::kSamplesPerFrame);
  EXPECT_LE(resumed_at, 8000 + audio::kSamplesPerFrame);
  EXPECT_NE(metrics().find("lipsync_live_underruns_total 1"), std::string::npos);
}

TEST_F(LiveTest, ASlowReaderGetsLateFramesNeverAShiftedTimeline) {
  auto o = options();
  o.format = "raw";           // 230 KB a frame
  o.read_delay_ms = 80;       // reads 12.5 frames a second of 25
  o.receive_window_kb = 256;  // over a narrow network
  const auto r =
      client::run_live_session(o, {say(200, speech(0, 32000)), at(4000, LiveAction::Kind::kEnd)});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_TRUE(r.contiguous);  // every tick, in order, at 40 ms x index
  EXPECT_GT(r.late_frames, 0);
  // The audio never stops: every speaking frame has its samples.
  for (const auto& f : r.records) {
    EXPECT_EQ(f.samples.size(), static_cast<std::size_t>(audio::kSamplesPerFrame));
  }
}

TEST_F(LiveTest, EightSessionsAtOnce) {
  std::vector<client::LiveReport> reports(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto o = options();
      o.keep_frames = false;
      o.start_frame = 0;
      reports[static_cast<std::size_t>(i)] = client::run_live_session(
          o, {say(200 + 100 * i, speech(1000 * i, 24000)), at(4000, LiveAction::Kind::kEnd)});
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : reports) {
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_TRUE(r.contiguous);
    EXPECT_EQ(r.speech_latency_ms.size(), 1u);
    EXPECT_GE(r.frames, 90);  // 4 s
  }
}

// The session's answer to a raw request sequence (the generated stub; frames are read and
// dropped).
grpc::Status raw_session(int port, const std::vector<v1::LiveRequest>& requests) {
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = v1::LipSync::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto call = stub->Live(&context);
  for (const auto& r : requests) {
    if (!call->Write(r)) break;
  }
  call->WritesDone();
  v1::LiveFrame frame;
  while (call->Read(&frame)) {
  }
  return call->Finish();
}

v1::LiveRequest config_request() {
  v1::LiveRequest r;
  r.mutable_config()->set_model_id("demo");
  return r;
}

TEST_F(LiveTest, MalformedSessionsAreInvalidArgumentNamingTheProblem) {
  v1::LiveRequest speech;
  speech.set_speech(std::string(640, '\0'));
  v1::LiveRequest bad_format = config_request();
  bad_format.mutable_config()->set_format(static_cast<v1::StreamConfig::Format>(77));
  v1::LiveRequest bad_encoding = config_request();
  bad_encoding.mutable_config()->set_encoding(static_cast<v1::StreamConfig::Encoding>(9));
  v1::LiveRequest bad_rate = config_request();
  bad_rate.mutable_config()->set_sample_rate(100);
  v1::LiveRequest odd;
  odd.set_speech(std::string(3, '\0'));  // 1.5 s16 samples, then the utterance ends
  v1::LiveRequest end;
  end.set_segment_end(true);
  const std::vector<std::pair<std::vector<v1::LiveRequest>, std::string>> cases{
      {{speech}, "a message before the config message"},
      {{config_request(), config_request()}, "a second config message"},
      {{bad_format}, "format 77 is not defined"},
      {{bad_encoding}, "encoding 9 is not defined"},
      {{bad_rate}, "sample_rate (0: 16000): 100 is out of range"},
      {{config_request(), v1::LiveRequest{}}, "an empty LiveRequest"},
      {{config_request(), odd, end}, "the utterance ends with"},
  };
  for (const auto& [requests, message] : cases) {
    const grpc::Status status = raw_session(server_->grpc_port(), requests);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << message;
    EXPECT_NE(status.error_message().find(message), std::string::npos)
        << status.error_message() << " vs " << message;
  }
  // Bytes that are no protobuf at all.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  grpc::ClientContext context;
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(&context, "/lipsync.v1.LipSync/Live", &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  const std::string garbage = "\xff\xff\xff\xff\x0f not protobuf";
  grpc::Slice slice(garbage.data(), garbage.size());
  grpc::ByteBuffer buffer(&slice, 1);
  call->Write(buffer, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(3));
  while (cq.Next(&tag, &ok) && tag != reinterpret_cast<void*>(3)) {
  }
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("message 1 is not a valid lipsync.v1.LiveRequest"),
            std::string::npos)
      << status.error_message();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  // None of them is left running (the count drops just after the status is sent).
  for (int i = 0; i < 100 && server_->active_live_sessions() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(server_->active_live_sessions(), 0);
}

TEST_F(LiveTest, ACancelledSessionEndsAtOnceAndShutdownEndsTheRest) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::LipSync::NewStub(channel);
  const auto speak = [&](grpc::ClientContext& context) {
    auto call = stub->Live(&context);
    EXPECT_TRUE(call->Write(config_request()));
    v1::LiveRequest speech;
    std::string bytes(speech_->size() * 2, '\0');
    for (std::size_t i = 0; i < speech_->size(); ++i) {
      const auto v = static_cast<std::int16_t>(std::lround((*speech_)[i] * 32767.0f));
      std::memcpy(&bytes[2 * i], &v, 2);
    }
    speech.set_speech(bytes);
    EXPECT_TRUE(call->Write(speech));
    return call;
  };
  {  // Cancelled mid-speech.
    grpc::ClientContext context;
    auto call = speak(context);
    v1::LiveFrame frame;
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(call->Read(&frame));
    context.TryCancel();
    EXPECT_EQ(call->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  for (int i = 0; i < 100 && server_->active_live_sessions() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(server_->active_live_sessions(), 0);
  EXPECT_NE(metrics().find("lipsync_requests_total{method=\"Live\",code=\"CANCELLED\"} 1"),
            std::string::npos);
  // Speaking when the server stops (grace 1 s): UNAVAILABLE, and the stop does not hang.
  grpc::ClientContext context;
  auto call = speak(context);
  v1::LiveFrame frame;
  ASSERT_TRUE(call->Read(&frame));
  const auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] { server_->stop(); });
  while (call->Read(&frame)) {
  }
  const grpc::Status status = call->Finish();
  stopper.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
}

TEST_F(LiveTest, BadSessionsGetTheirCode) {
  auto o = options();
  o.model = "ghost";
  EXPECT_EQ(client::run_live_session(o, {at(100, LiveAction::Kind::kEnd)}).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
  o = options();
  o.latency_ms = -5;
  const auto bad_latency = client::run_live_session(o, {at(100, LiveAction::Kind::kEnd)});
  EXPECT_EQ(bad_latency.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad_latency.status.error_message().find("latency_ms (0: the server's): -5"),
            std::string::npos);
  o = options();
  o.start_frame = kTemplates;
  EXPECT_EQ(client::run_live_session(o, {at(100, LiveAction::Kind::kEnd)}).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Admission.
  start([](server::ServerConfig& c) { c.live.max_sessions = 1; });
  std::thread holder(
      [&] { (void)client::run_live_session(options(), {at(1500, LiveAction::Kind::kEnd)}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const auto refused = client::run_live_session(options(), {at(100, LiveAction::Kind::kEnd)});
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.status.error_message().find("live.max_sessions = 1"), std::string::npos);
  holder.join();
}

}  // namespace
}  // namespace lipsync
