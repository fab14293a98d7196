// The server against hostile and careless clients, each way it broke as a test: fast streams,
// many fast streams, a client that never reads, unary calls abandoned by their clients, and the
// small defects of the flow-control issue. A real server on loopback, real gRPC clients.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <thread>

#include "audio/audio_file.h"
#include "audio/video_frames.h"
#include "avatar/avatar_import.h"
#include "lipsync/v1/lipsync.grpc.pb.h"
#include "monolithic.grpc.pb.h"
#include "server/server.h"
#include "support/http_client.h"
#include "support/test_data.h"
#include "support/test_models.h"
#include "support/test_server.h"

namespace lipsync {
namespace {

using lipsync::v1::StreamConfig;
using lipsync::v1::StreamRequest;
using lipsync::v1::StreamResponse;

std::string f32_bytes(std::span<const float> samples) {
  return std::string(reinterpret_cast<const char*>(samples.data()), samples.size() * 4);
}

class HostileClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    avatar::write_demo_avatar(*dir_ / "avatar", 9, 320, 240);
    speech_ = new std::vector<float>(
        audio::load_audio_file(testing::testdata("reference/speech_a_en.wav")));
  }
  static void TearDownTestSuite() {
    delete speech_;
    delete dir_;
  }

  // A server of the demo models ("demo") and a narrow synthetic model ("slow", 15 ms a frame).
  void start(const std::function<void(server::ServerConfig&)>& edit = {}) {
    server_.reset();
    server_ = testing::start_test_server(*dir_ / "avatar", [&](server::ServerConfig& c) {
      c.models.push_back({"slow", *dir_ / "avatar", testing::synth_models(), true});
      if (edit) edit(c);
    });
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(256 << 20);
    args.SetMaxReceiveMessageSize(256 << 20);
    channel_ = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                         grpc::InsecureChannelCredentials(), args);
    stub_ = lipsync::v1::LipSync::NewStub(channel_);
    mono_ = monolithic::MonolithicService::NewStub(channel_);
  }
  void SetUp() override { start(); }

  // `seconds` of speech (the reference clip repeated).
  static std::vector<float> speech(double seconds) {
    std::vector<float> out;
    const auto n = static_cast<std::size_t>(seconds * 16000);
    while (out.size() < n) out.insert(out.end(), speech_->begin(), speech_->end());
    out.resize(n);
    return out;
  }

  static StreamRequest config(const std::string& model = "demo",
                              StreamConfig::Format format = StreamConfig::FORMAT_JPEG) {
    StreamRequest r;
    r.mutable_config()->set_model_id(model);
    r.mutable_config()->set_format(format);
    r.mutable_config()->set_encoding(StreamConfig::ENCODING_F32LE);
    return r;
  }

  struct Outcome {
    grpc::Status status;
    int frames = 0;
    bool in_order = true;
  };
  // Sends the audio in chunks as fast as the server takes them; reads concurrently.
  Outcome stream(const std::vector<float>& audio, std::size_t chunk_samples,
                 const StreamRequest& first) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
    auto call = stub_->Stream(&context);
    Outcome out;
    std::thread reader([&] {
      StreamResponse r;
      while (call->Read(&r)) {
        if (r.index() != out.frames) out.in_order = false;
        ++out.frames;
      }
    });
    call->Write(first);
    for (std::size_t pos = 0; pos < audio.size(); pos += chunk_samples) {
      StreamRequest a;
      a.set_audio(
          f32_bytes(std::span(audio).subspan(pos, std::min(chunk_samples, audio.size() - pos))));
      if (!call->Write(a)) break;
    }
    StreamRequest end;
    end.set_end(true);
    call->Write(end);
    call->WritesDone();
    reader.join();
    out.status = call->Finish();
    return out;
  }

  std::string metrics() {
    // The server's own metrics text, through the HTTP endpoint.
    return testing::http_get(server_->http_port(), "/metrics").body;
  }

  static testing::TempDir* dir_;
  static std::vector<float>* speech_;
  std::unique_ptr<server::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<lipsync::v1::LipSync::Stub> stub_;
  std::unique_ptr<monolithic::MonolithicService::Stub> mono_;
};
testing::TempDir* HostileClientTest::dir_ = nullptr;
std::vector<float>* HostileClientTest::speech_ = nullptr;

TEST_F(HostileClientTest, TwoMinutesSentAsFastAsPossibleGetEveryFrame) {
  // The old server refused such a stream part-way (RESOURCE_EXHAUSTED after 1701 frames of five
  // minutes) because its shared queue filled up.
  const auto audio = speech(120);
  const auto r = stream(audio, 640, config());
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_TRUE(r.in_order);
  EXPECT_EQ(r.frames, audio::clip_frames_for_samples(audio.size()));
  // One 16 MB message (about 4.4 minutes of audio) is taken too.
  const auto big = speech(262);
  const auto r2 = stream(big, big.size(), config());
  ASSERT_TRUE(r2.status.ok()) << r2.status.error_message();
  EXPECT_EQ(r2.frames, audio::clip_frames_for_samples(big.size()));
}

TEST_F(HostileClientTest, ThirtyConcurrentFastStreamsAllComplete) {
  const auto audio = speech(4);
  const int expected = audio::clip_frames_for_samples(audio.size());
  std::vector<std::thread> threads;
  std::atomic<int> complete{0};
  std::vector<std::string> failures(30);
  for (int i = 0; i < 30; ++i) {
    threads.emplace_back([&, i] {
      const auto r = stream(audio, 320 + 97 * i, config(i % 3 == 0 ? "slow" : "demo"));
      if (r.status.ok() && r.frames == expected && r.in_order) {
        ++complete;
      } else {
        failures[i] = r.status.error_message() + " frames " + std::to_string(r.frames);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(complete.load(), 30);
  for (const auto& f : failures) EXPECT_TRUE(f.empty()) << f;
}

TEST_F(HostileClientTest, AClientThatNeverReadsIsHeldToItsWindow) {
  // RAW frames (230 KB each) that the client never reads. The server renders its window of them
  // (plus what gRPC's own buffers take) and then stops: it reads no more of the client's audio
  // than that needs, and renders nothing ahead.
  grpc::ClientContext context;
  auto call = stub_->Stream(&context);
  ASSERT_TRUE(call->Write(config("demo", StreamConfig::FORMAT_RAW)));
  const auto audio = speech(20);  // 500 frames
  std::thread writer([&] {
    for (std::size_t pos = 0; pos < audio.size(); pos += 640) {
      StreamRequest a;
      a.set_audio(
          f32_bytes(std::span(audio).subspan(pos, std::min<std::size_t>(640, audio.size() - pos))));
      if (!call->Write(a)) return;
    }
  });
  const auto frames_made = [&] {
    const std::string m = metrics();
    const auto at = m.find("\nlipsync_frames_total ");
    return std::stol(m.substr(at + 22));
  };
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const long after_3s = frames_made();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(frames_made(), after_3s)
      << "the server went on rendering for a client that never reads";
  EXPECT_GE(after_3s, 24);   // the window is in flight
  EXPECT_LT(after_3s, 100);  // and little more: 500 frames were sent
  EXPECT_EQ(server_->registry().queue_depth(), 0u);
  context.TryCancel();
  writer.join();
  for (int i = 0; i < 100 && server_->active_streams() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(server_->active_streams(), 0);
}

TEST_F(HostileClientTest, AbandonedUnaryCallsDropTheirFramesAndCountTheirCode) {
  // 12 calls of 200 frames on the slow model (about 3 s of generator time each) whose clients
  // give up after 300 ms.
  monolithic::CompositeBatchRequest request;
  request.set_model_id("slow");
  request.set_raw_audio(f32_bytes(speech(9)));
  request.set_batch_size(200);
  std::vector<std::thread> threads;
  std::atomic<int> deadline_exceeded{0};
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
      monolithic::CompositeBatchResponse response;
      const auto status = mono_->InferBatchComposite(&context, request, &response);
      deadline_exceeded += status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(deadline_exceeded.load(), 12);
  // Their frames leave the queue at once (the batch already running may finish).
  bool drained = false;
  for (int i = 0; i < 100 && !drained; ++i) {
    drained = server_->registry().queue_depth() == 0 && server_->active_calls() == 0;
    if (!drained) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(drained) << server_->registry().queue_depth() << " frames still queued";
  // A fresh small call is not stuck behind them.
  request.set_batch_size(5);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  monolithic::CompositeBatchResponse response;
  ASSERT_TRUE(mono_->InferBatchComposite(&context, request, &response).ok());
  EXPECT_EQ(response.composited_frames_size(), 5);
  // A client that cancels is counted as such.
  {
    grpc::ClientContext c;
    request.set_batch_size(200);
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      c.TryCancel();
    });
    EXPECT_EQ(mono_->InferBatchComposite(&c, request, &response).error_code(),
              grpc::StatusCode::CANCELLED);
    canceller.join();
  }
  for (int i = 0; i < 50 && server_->active_calls() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string m = metrics();
  EXPECT_NE(
      m.find(
          "lipsync_requests_total{method=\"InferBatchComposite\",code=\"DEADLINE_EXCEEDED\"} 12"),
      std::string::npos)
      << m;
  EXPECT_NE(m.find("lipsync_requests_total{method=\"InferBatchComposite\",code=\"CANCELLED\"} 1"),
            std::string::npos)
      << m;
}

TEST_F(HostileClientTest, StreamsArePacedNotRefusedAndAdmissionSaysWhichLimit) {
  start([](server::ServerConfig& c) { c.server.max_streams = 2; });
  grpc::ClientContext a, b, c;
  auto s1 = stub_->Stream(&a);
  auto s2 = stub_->Stream(&b);
  ASSERT_TRUE(s1->Write(config()));
  ASSERT_TRUE(s2->Write(config()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto s3 = stub_->Stream(&c);
  s3->Write(config());
  s3->WritesDone();
  StreamResponse r;
  EXPECT_FALSE(s3->Read(&r));
  const auto status = s3->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("server.max_streams = 2"), std::string::npos)
      << status.error_message();
  a.TryCancel();
  b.TryCancel();
}

TEST_F(HostileClientTest, SmallDefectsEachGetTheirAnswer) {
  // start_frame_idx near INT_MAX: INVALID_ARGUMENT, not INTERNAL.
  monolithic::CompositeBatchRequest request;
  request.set_model_id("demo");
  request.set_raw_audio(f32_bytes(*speech_));
  request.set_batch_size(5);
  request.set_start_frame_idx(INT_MAX - 2);
  monolithic::CompositeBatchResponse response;
  {
    grpc::ClientContext context;
    const auto status = mono_->InferBatchComposite(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("start_frame_idx"), std::string::npos);
  }
  request.set_start_frame_idx(INT_MAX - 5);  // the largest that fits works
  {
    grpc::ClientContext context;
    EXPECT_TRUE(mono_->InferBatchComposite(&context, request, &response).ok());
  }
  // A 100 KB model id: NOT_FOUND with the id cut short, not an oversized reply.
  request.set_start_frame_idx(0);
  request.set_model_id(std::string(100000, 'm'));
  {
    grpc::ClientContext context;
    const auto status = mono_->InferBatchComposite(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_LT(status.error_message().size(), 400u);
    EXPECT_NE(status.error_message().find("(100000 bytes)"), std::string::npos);
  }
  // Undefined enum values in a StreamConfig.
  auto bad_format = config();
  bad_format.mutable_config()->set_format(static_cast<StreamConfig::Format>(7));
  auto r = stream(*speech_, 16000, bad_format);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r.status.error_message().find("format 7"), std::string::npos);
  auto bad_encoding = config();
  bad_encoding.mutable_config()->set_encoding(static_cast<StreamConfig::Encoding>(9));
  r = stream(*speech_, 16000, bad_encoding);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r.status.error_message().find("encoding 9"), std::string::npos);
  // UnloadModel right after a finished call: the call has let go of the model.
  request.set_model_id("slow");
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    ASSERT_TRUE(mono_->InferBatchComposite(&context, request, &response).ok());
    grpc::ClientContext unload_context;
    monolithic::UnloadModelRequest unload;
    unload.set_model_id("slow");
    monolithic::UnloadModelResponse unloaded;
    const auto status = mono_->UnloadModel(&unload_context, unload, &unloaded);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
}

TEST_F(HostileClientTest, AverageInferenceTimeIsPerGeneratorRun) {
  monolithic::CompositeBatchRequest request;
  request.set_model_id("slow");
  request.set_raw_audio(f32_bytes(*speech_));
  request.set_batch_size(16);
  monolithic::CompositeBatchResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(mono_->InferBatchComposite(&context, request, &response).ok());
  }
  for (int i = 0; i < 5; ++i) {  // loads and streams used to dilute the average
    grpc::ClientContext context;
    monolithic::LoadModelRequest load;
    load.set_model_id("slow");
    monolithic::LoadModelResponse loaded;
    ASSERT_TRUE(mono_->LoadModel(&context, load, &loaded).ok());
  }
  grpc::ClientContext context;
  monolithic::GetModelStatsResponse stats;
  ASSERT_TRUE(mono_->GetModelStats(&context, {}, &stats).ok());
  const auto& slow = stats.models(1);
  ASSERT_EQ(slow.model_id(), "slow");
  const auto status = server_->registry().status()[1];
  ASSERT_GT(status.generator_runs, 0);
  EXPECT_NEAR(slow.avg_inference_ms(), status.total_inference_ms / status.generator_runs, 1e-3);
  // 16 frames of ~15 ms in batches of up to 8: a run takes tens of milliseconds, not ~1.
  EXPECT_GT(slow.avg_inference_ms(), 20.0);
}

TEST_F(HostileClientTest, StreamsRecordTheAudioStagesAndRefuseAudioPastTheCap) {
  start([](server::ServerConfig& c) { c.audio.max_seconds = 3; });
  auto r = stream(*speech_, 8000, config());  // 4.8 s > 3 s
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r.status.error_message().find("audio.max_seconds (3 s)"), std::string::npos)
      << r.status.error_message();
  r = stream(std::vector<float>(speech_->begin(), speech_->begin() + 40000), 8000, config());
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  const std::string m = metrics();
  for (const char* stage :
       {"decode", "mel", "windows", "encoder", "generator", "composite", "encode"}) {
    EXPECT_NE(m.find("lipsync_stage_seconds_count{stage=\"" + std::string(stage) + "\"}"),
              std::string::npos)
        << stage;
  }
  EXPECT_NE(m.find("lipsync_requests_total{method=\"Stream\",code=\"OK\"} 1"), std::string::npos);
}

TEST_F(HostileClientTest, UndecodableMessagesGetAMessage) {
  // Bytes that are no CompositeBatchRequest, through a generic stub.
  grpc::GenericStub generic(channel_);
  grpc::ClientContext context;
  const char garbage[] = "\xff\xff\xff\xff\x0f not protobuf";
  grpc::Slice slice(garbage, sizeof garbage - 1);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer reply;
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&context, "/monolithic.MonolithicService/InferBatchComposite",
                    grpc::StubOptions(), &request, &reply, [&](grpc::Status s) {
                      std::lock_guard lock(mutex);
                      status = std::move(s);
                      done = true;
                      done_cv.notify_all();
                    });
  std::unique_lock lock(mutex);
  ASSERT_TRUE(done_cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; }));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("not a valid monolithic.CompositeBatchRequest"),
            std::string::npos)
      << status.error_message();
}

TEST_F(HostileClientTest, AnUndecodableStreamMessageEndsTheStreamSayingSo) {
  grpc::GenericStub generic(channel_);
  grpc::ClientContext context;
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(&context, "/lipsync.v1.LipSync/Stream", &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  const auto send = [&](const std::string& bytes, std::intptr_t t) {
    grpc::Slice slice(bytes.data(), bytes.size());
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, reinterpret_cast<void*>(t));
    return cq.Next(&tag, &ok) && ok;
  };
  ASSERT_TRUE(send(config().SerializeAsString(), 2));
  send("\xff\xff\xff\xff\x0f not protobuf", 3);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  while (cq.Next(&tag, &ok) && tag != reinterpret_cast<void*>(4)) {
  }
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("message 2 is not a valid lipsync.v1.StreamRequest"),
            std::string::npos)
      << status.error_message();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(HostileClientTest, AGrpcPortInUseOrOutOfRangeFailsStartUpNamingIt) {
  server::ServerConfig config;
  config.server.grpc_address = "127.0.0.1:" + std::to_string(server_->grpc_port());
  config.server.http_address = "";
  config.models = {{"demo", *dir_ / "avatar", testing::demo_models(), false}};
  server::Server second(config);
  try {
    second.start();
    ADD_FAILURE() << "a second server shares " << config.server.grpc_address;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    EXPECT_NE(e.message().find(config.server.grpc_address), std::string::npos) << e.message();
  }
  config.server.grpc_address = "127.0.0.1:65536";
  try {
    server::Server bad(config);
    ADD_FAILURE() << "port 65536 accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("server.grpc"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("65535"), std::string::npos) << e.message();
  }
  // The first server is unharmed.
  const auto r = stream(*speech_, 16000, HostileClientTest::config());
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
}

}  // namespace
}  // namespace lipsync
