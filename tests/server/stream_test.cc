// The streaming API against the real server: frames equal the offline renderer's for any
// chunking, cancellation frees the session, bad streams get their code.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>

#include "audio/audio_file.h"
#include "audio/resampler.h"
#include "avatar/avatar_import.h"
#include "infer/models.h"
#include "lipsync/v1/lipsync.grpc.pb.h"
#include "pipeline/offline_renderer.h"
#include "render/image_encoder.h"
#include "server/server.h"
#include "support/test_data.h"
#include "support/test_models.h"
#include "support/test_server.h"

namespace lipsync {
namespace {

using lipsync::v1::StreamConfig;
using lipsync::v1::StreamRequest;
using lipsync::v1::StreamResponse;

class StreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    avatar::write_demo_avatar(*dir_ / "avatar", 9, 320, 240);
    speech_ = new std::vector<float>(
        audio::load_audio_file(testing::testdata("reference/speech_a_en.wav")));
    // The offline renderer's PNG frames for the whole clip, start frame 0.
    const auto avatar = avatar::Avatar::open(*dir_ / "avatar", {});
    const infer::Models models(testing::demo_models(), testing::two_threads());
    struct Sink : pipeline::FrameSink {
      void write(int, const cv::Mat& f, std::vector<std::uint8_t>) override {
        pngs.push_back(render::encode_png(f));
      }
      void finish() override {}
      std::vector<std::vector<std::uint8_t>> pngs;
    } sink;
    pipeline::OfflineRenderer(avatar, models, {}).render(*speech_, sink);
    offline_ = new std::vector<std::vector<std::uint8_t>>(std::move(sink.pngs));
  }
  static void TearDownTestSuite() {
    delete offline_;
    delete speech_;
    delete dir_;
  }

  void SetUp() override {
    server_ = testing::start_test_server(
        *dir_ / "avatar", [](server::ServerConfig& c) { c.server.http_address = ""; });
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = lipsync::v1::LipSync::NewStub(channel_);
  }

  static StreamRequest config(StreamConfig::Format format = StreamConfig::FORMAT_PNG,
                              StreamConfig::Encoding encoding = StreamConfig::ENCODING_F32LE) {
    StreamRequest r;
    r.mutable_config()->set_model_id("demo");
    r.mutable_config()->set_format(format);
    r.mutable_config()->set_encoding(encoding);
    return r;
  }

  struct Result {
    grpc::Status status;
    std::vector<StreamResponse> frames;
  };

  // Sends the clip in chunks of the given sizes (bytes), then the end marker; reads concurrently.
  Result stream(const std::string& bytes, const std::vector<std::size_t>& chunks,
                StreamRequest first) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto call = stub_->Stream(&context);
    Result result;
    std::thread reader([&] {
      StreamResponse response;
      while (call->Read(&response)) result.frames.push_back(response);
    });
    call->Write(first);
    std::size_t pos = 0;
    for (std::size_t c : chunks) {
      if (pos >= bytes.size()) break;
      StreamRequest audio;
      audio.set_audio(bytes.substr(pos, c));
      pos += c;
      if (!call->Write(audio)) break;
    }
    StreamRequest end;
    end.set_end(true);
    call->Write(end);
    call->WritesDone();
    reader.join();
    result.status = call->Finish();
    return result;
  }

  std::string f32_bytes() const {
    return std::string(reinterpret_cast<const char*>(speech_->data()), speech_->size() * 4);
  }

  void expect_offline(const Result& r) {
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    ASSERT_EQ(r.frames.size(), offline_->size());
    for (std::size_t i = 0; i < r.frames.size(); ++i) {
      ASSERT_EQ(r.frames[i].index(), int(i));
      EXPECT_EQ(r.frames[i].pts_ms(), int64_t(i) * 40);
      const auto& expected = (*offline_)[i];
      ASSERT_EQ(r.frames[i].frame().size(), expected.size()) << "frame " << i;
      EXPECT_EQ(0, std::memcmp(r.frames[i].frame().data(), expected.data(), expected.size()))
          << "frame " << i;
    }
  }

  static testing::TempDir* dir_;
  static std::vector<float>* speech_;
  static std::vector<std::vector<std::uint8_t>>* offline_;
  std::unique_ptr<server::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<lipsync::v1::LipSync::Stub> stub_;
};

testing::TempDir* StreamTest::dir_ = nullptr;
std::vector<float>* StreamTest::speech_ = nullptr;
std::vector<std::vector<std::uint8_t>>* StreamTest::offline_ = nullptr;

TEST_F(StreamTest, EqualsTheOfflineRendererForSeveralChunkings) {
  const std::string bytes = f32_bytes();
  // 40 ms chunks, one big chunk, and random sizes that split samples across chunks.
  expect_offline(stream(bytes, std::vector<std::size_t>(200, 640 * 4), config()));
  expect_offline(stream(bytes, {bytes.size()}, config()));
  std::mt19937 rng(7);
  std::vector<std::size_t> random;
  for (int i = 0; i < 400; ++i) random.push_back(1 + rng() % 9000);
  random.push_back(bytes.size());
  expect_offline(stream(bytes, random, config()));
}

TEST_F(StreamTest, S16AudioAndJpegFrames) {
  std::string s16;
  for (float v : *speech_) {
    const auto x = static_cast<std::int16_t>(std::lround(v * 32768.0f));
    s16.append(reinterpret_cast<const char*>(&x), 2);
  }
  const auto r =
      stream(s16, {s16.size()}, config(StreamConfig::FORMAT_JPEG, StreamConfig::ENCODING_S16LE));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.frames.size(), 118u);
  EXPECT_EQ(static_cast<unsigned char>(r.frames[0].frame()[0]), 0xFF);
  EXPECT_EQ(r.frames[0].width(), 320);
}

// Chunks that hold no whole sample, and resampled chunks too short for the resampler to give
// any output yet (soxr's delay at 44.1 kHz), are part of the audio, not errors.
TEST_F(StreamTest, ChunksThatDecodeToNoSamplesYetAreNotErrors) {
  const std::string bytes = f32_bytes();
  std::vector<std::size_t> tiny{1, 1, 1, 3, 2, 1, 1};  // the first samples in pieces
  tiny.push_back(bytes.size());
  expect_offline(stream(bytes, tiny, config()));

  // 44.1 kHz s16 in 40 ms chunks: the first chunk resamples to nothing.
  const std::vector<float> at44 = audio::resample(*speech_, audio::kSampleRateHz, 44100);
  std::string s16;
  for (float v : at44) {
    const auto x = static_cast<std::int16_t>(std::lround(std::clamp(v, -1.0f, 1.0f) * 32767.0f));
    s16.append(reinterpret_cast<const char*>(&x), 2);
  }
  StreamRequest first = config(StreamConfig::FORMAT_JPEG, StreamConfig::ENCODING_S16LE);
  first.mutable_config()->set_sample_rate(44100);
  const auto r = stream(s16, std::vector<std::size_t>(400, 1764 * 2), first);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.frames.size(), offline_->size());
}

TEST_F(StreamTest, BadStreamsGetTheirCode) {
  auto unknown = config();
  unknown.mutable_config()->set_model_id("ghost");
  EXPECT_EQ(stream(f32_bytes(), {4000}, unknown).status.error_code(), grpc::StatusCode::NOT_FOUND);
  auto start = config();
  start.mutable_config()->set_start_frame(99);
  EXPECT_EQ(stream(f32_bytes(), {4000}, start).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  StreamRequest audio_first;
  audio_first.set_audio("abcd");
  EXPECT_EQ(stream("", {}, audio_first).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Too short: 2999 samples.
  const auto r = stream(f32_bytes().substr(0, 2999 * 4), {2999 * 4}, config());
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r.status.error_message().find("too short"), std::string::npos);
  // And a good stream still works afterwards.
  EXPECT_EQ(stream(f32_bytes(), {f32_bytes().size()}, config()).frames.size(), 118u);
}

TEST_F(StreamTest, FiftyClientsDisconnectingMidStreamLeaveTheServerHealthy) {
  const std::string bytes = f32_bytes();
  std::vector<std::thread> threads;
  for (int c = 0; c < 50; ++c) {
    threads.emplace_back([&, c] {
      grpc::ClientContext context;
      auto call = stub_->Stream(&context);
      call->Write(config());
      StreamRequest audio;
      audio.set_audio(bytes.substr(0, std::size_t(16000 + c * 800) * 4));
      call->Write(audio);
      if (c % 2 == 0) {  // read a frame or two first
        StreamResponse response;
        call->Read(&response);
      }
      context.TryCancel();
    });
  }
  for (auto& t : threads) t.join();
  // Sessions go away, and a full stream still matches.
  for (int i = 0; i < 100 && server_->active_streams() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(server_->active_streams(), 0);
  expect_offline(stream(bytes, {bytes.size()}, config()));
}

}  // namespace
}  // namespace lipsync
