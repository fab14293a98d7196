// Integration tests: the real server (gRPC + HTTP) on free loopback ports, driven by a client
// built from our own copy of the old server's proto.
#include "server/server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <cstring>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "audio/audio_file.h"
#include "audio/resampler.h"
#include "avatar/avatar_import.h"
#include "avatar/template_walk.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "infer/models.h"
#include "monolithic.grpc.pb.h"
#include "pipeline/offline_renderer.h"
#include "render/image_encoder.h"
#include "render/jpeg_splice.h"
#include "support/test_data.h"
#include "support/test_models.h"
#include "support/test_server.h"

namespace lipsync {
namespace {

namespace fs = std::filesystem;
using testing::testdata;

std::string f32_bytes(std::span<const float> samples) {
  return std::string(reinterpret_cast<const char*>(samples.data()), samples.size() * 4);
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    avatar::write_demo_avatar(*dir_ / "avatar", 10, 320, 240);
    speech_ = new std::vector<float>(audio::load_audio_file(testdata("reference/speech_a_en.wav")));
  }
  static void TearDownTestSuite() {
    delete speech_;
    delete dir_;
  }

  void SetUp() override { start({}); }

  void start(server::RegistryOptions registry, int max_message_mb = 8) {
    server_.reset();
    server_ = testing::start_test_server(*dir_ / "avatar", [&](server::ServerConfig& c) {
      c.server.max_message_mb = max_message_mb;
      c.server.max_request_frames = 250;
      c.models.push_back({"other", *dir_ / "avatar", testing::demo_models(), false});
      c.registry = registry;
    });
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    args.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                         grpc::InsecureChannelCredentials(), args);
    stub_ = monolithic::MonolithicService::NewStub(channel_);
  }

  monolithic::CompositeBatchRequest request(int batch, int start = 0) const {
    monolithic::CompositeBatchRequest r;
    r.set_model_id("demo");
    r.set_raw_audio(f32_bytes(*speech_));
    r.set_batch_size(batch);
    r.set_start_frame_idx(start);
    return r;
  }

  grpc::Status call(const monolithic::CompositeBatchRequest& r,
                    monolithic::CompositeBatchResponse* out) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->InferBatchComposite(&context, r, out);
  }

  void expect_healthy() {
    grpc::ClientContext context;
    monolithic::HealthResponse health;
    ASSERT_TRUE(stub_->Health(&context, {}, &health).ok());
    EXPECT_TRUE(health.healthy());
  }

  std::string http_get(const std::string& target) {
    namespace beast = boost::beast;
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket(io);
    socket.connect({boost::asio::ip::make_address("127.0.0.1"),
                    static_cast<unsigned short>(server_->http_port())});
    beast::http::request<beast::http::empty_body> req{beast::http::verb::get, target, 11};
    req.set(beast::http::field::host, "localhost");
    beast::http::write(socket, req);
    beast::flat_buffer buffer;
    beast::http::response<beast::http::string_body> res;
    beast::http::read(socket, buffer, res);
    return std::to_string(res.result_int()) + " " + res.body();
  }

  static testing::TempDir* dir_;
  static std::vector<float>* speech_;
  std::unique_ptr<server::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<monolithic::MonolithicService::Stub> stub_;
};

testing::TempDir* ServerTest::dir_ = nullptr;
std::vector<float>* ServerTest::speech_ = nullptr;

// Frames of the offline renderer for the same audio, as the server's JPEGs.
class JpegSink : public pipeline::FrameSink {
 public:
  void write(int, const cv::Mat& frame, std::vector<std::uint8_t>) override {
    // The server splices its JPEG frames (render/jpeg_splice.h): the bytes of a whole encoding
    // with restart markers, which decodes to encode_jpeg's pixels.
    jpegs.push_back(render::encode_jpeg_segmented(frame, 75).bytes);
    const cv::Mat a = cv::imdecode(jpegs.back(), cv::IMREAD_COLOR);
    const cv::Mat b = cv::imdecode(render::encode_jpeg(frame, 75), cv::IMREAD_COLOR);
    EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0.0);
  }
  void finish() override {}
  std::vector<std::vector<std::uint8_t>> jpegs;
};

TEST_F(ServerTest, InferBatchCompositeEqualsTheOfflineRenderer) {
  monolithic::CompositeBatchResponse response;
  const auto status = call(request(25), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.success());
  ASSERT_EQ(response.composited_frames_size(), 25);
  EXPECT_TRUE(response.model_loaded());  // preloaded
  EXPECT_GT(response.total_time_ms(), 0.0f);
  EXPECT_GT(response.audio_processing_ms(), 0.0f);
  EXPECT_GT(response.inference_time_ms(), 0.0f);
  EXPECT_GT(response.composite_time_ms(), 0.0f);
  EXPECT_GE(response.total_time_ms(), response.audio_processing_ms());
  EXPECT_EQ(response.gpu_id(), -1);

  const auto avatar = avatar::Avatar::open(*dir_ / "avatar", {});
  const infer::Models models(testing::demo_models(), testing::two_threads());
  JpegSink sink;
  pipeline::OfflineRenderer(avatar, models, {}).render(*speech_, sink);
  for (int i = 0; i < 25; ++i) {
    const std::string& got = response.composited_frames(i);
    const cv::Mat decoded =
        cv::imdecode(std::vector<uchar>(got.begin(), got.end()), cv::IMREAD_COLOR);
    ASSERT_EQ(decoded.cols, 320);
    ASSERT_EQ(decoded.rows, 240);
    ASSERT_EQ(got.size(), sink.jpegs[i].size()) << "frame " << i;
    EXPECT_EQ(0, std::memcmp(got.data(), sink.jpegs[i].data(), got.size())) << "frame " << i;
  }
}

TEST_F(ServerTest, StartFrameSampleRateAndVisualFramesAreHonoured) {
  // start_frame_idx moves along the template walk.
  monolithic::CompositeBatchResponse a, b;
  ASSERT_TRUE(call(request(4, 0), &a).ok());
  ASSERT_TRUE(call(request(4, 3), &b).ok());
  EXPECT_NE(a.composited_frames(0), b.composited_frames(0));
  EXPECT_EQ(avatar::template_frame_for(3, 10, 0), 4);
  // 48 kHz audio is resampled, not read as 16 kHz.
  const auto at48k = audio::resample(*speech_, 16000, 48000);
  auto r = request(10);
  r.set_raw_audio(f32_bytes(at48k));
  r.set_sample_rate(48000);
  monolithic::CompositeBatchResponse c;
  ASSERT_TRUE(call(r, &c).ok());
  EXPECT_EQ(c.composited_frames_size(), 10);
  // Client ROIs of the right size are used.
  auto v = request(2);
  std::vector<float> visual(2 * 6 * 320 * 320, 0.25f);
  v.set_visual_frames(f32_bytes(visual));
  monolithic::CompositeBatchResponse d;
  ASSERT_TRUE(call(v, &d).ok());
  EXPECT_NE(d.composited_frames(0), a.composited_frames(0));
}

TEST_F(ServerTest, BadRequestsGetTheirCodeAndTheServerStaysHealthy) {
  struct Case {
    const char* name;
    std::function<void(monolithic::CompositeBatchRequest&)> edit;
    grpc::StatusCode code;
    const char* message;
  };
  const std::vector<Case> cases{
      {"unknown model", [](auto& r) { r.set_model_id("nobody"); }, grpc::StatusCode::NOT_FOUND,
       "nobody"},
      {"batch 0", [](auto& r) { r.set_batch_size(0); }, grpc::StatusCode::INVALID_ARGUMENT,
       "batch_size 0"},
      {"batch 10000", [](auto& r) { r.set_batch_size(10000); }, grpc::StatusCode::INVALID_ARGUMENT,
       "batch_size 10000"},
      {"negative start", [](auto& r) { r.set_start_frame_idx(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "start_frame_idx -1"},
      {"1 byte of audio", [](auto& r) { r.set_raw_audio("x"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "raw_audio has 1 bytes"},
      {"2 bytes of audio", [](auto& r) { r.set_raw_audio("xy"); },
       grpc::StatusCode::INVALID_ARGUMENT, "raw_audio has 2 bytes"},
      {"3 bytes of audio", [](auto& r) { r.set_raw_audio("xyz"); },
       grpc::StatusCode::INVALID_ARGUMENT, "raw_audio has 3 bytes"},
      {"not a multiple of 4", [](auto& r) { r.set_raw_audio(r.raw_audio() + "ab"); },
       grpc::StatusCode::INVALID_ARGUMENT, "multiple of 4"},
      {"NaN samples",
       [](auto& r) {
         std::string a = r.raw_audio();
         const float nan = std::nanf("");
         std::memcpy(a.data() + 400, &nan, 4);
         r.set_raw_audio(a);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "raw_audio"},
      {"too little audio", [](auto& r) { r.set_batch_size(119); },
       grpc::StatusCode::INVALID_ARGUMENT, "gives 118 frames"},
      {"wrong visual_frames size", [](auto& r) { r.set_visual_frames(std::string(1000, '\0')); },
       grpc::StatusCode::INVALID_ARGUMENT, "visual_frames has 1000 bytes"},
      {"sample rate", [](auto& r) { r.set_sample_rate(5); }, grpc::StatusCode::INVALID_ARGUMENT,
       "sample_rate (0: 16000): 5 is out of range"},
      // Issue 24 (found by fuzzing): one sample at 48 kHz resamples to none, and soxr wrote
      // through a null pointer: the server died.
      {"one sample at 48 kHz",
       [](auto& r) {
         r.set_raw_audio(std::string(4, '\0'));
         r.set_sample_rate(48000);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "raw_audio"},
  };
  for (const Case& c : cases) {
    auto r = request(5);
    c.edit(r);
    monolithic::CompositeBatchResponse response;
    const auto status = call(r, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.message), std::string::npos)
        << c.name << ": " << status.error_message();
    expect_healthy();
  }
  // Over the message size limit (8 MB here): refused by gRPC itself.
  auto big = request(5);
  big.set_raw_audio(std::string(9 << 20, '\0'));
  monolithic::CompositeBatchResponse response;
  EXPECT_EQ(call(big, &response).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  expect_healthy();
  // And it still renders.
  EXPECT_TRUE(call(request(3), &response).ok());
}

TEST_F(ServerTest, ModelManagementAndStats) {
  grpc::ClientContext c1;
  monolithic::ListModelsResponse list;
  ASSERT_TRUE(stub_->ListModels(&c1, {}, &list).ok());
  ASSERT_EQ(list.models_size(), 2);
  EXPECT_EQ(list.models(0).model_id(), "demo");
  EXPECT_TRUE(list.models(0).loaded());
  EXPECT_GT(list.models(0).memory_mb(), 0);
  EXPECT_FALSE(list.models(1).loaded());

  monolithic::LoadModelRequest load;
  load.set_model_id("other");
  monolithic::LoadModelResponse loaded;
  grpc::ClientContext c2;
  ASSERT_TRUE(stub_->LoadModel(&c2, load, &loaded).ok());
  EXPECT_TRUE(loaded.success());
  EXPECT_GT(loaded.load_time_ms(), 0.0f);

  load.set_model_id("ghost");
  grpc::ClientContext c3;
  EXPECT_EQ(stub_->LoadModel(&c3, load, &loaded).error_code(), grpc::StatusCode::NOT_FOUND);

  monolithic::CompositeBatchResponse r;
  ASSERT_TRUE(call(request(5), &r).ok());
  grpc::ClientContext c4;
  monolithic::GetModelStatsResponse stats;
  ASSERT_TRUE(stub_->GetModelStats(&c4, {}, &stats).ok());
  EXPECT_GE(stats.models(0).request_count(), 2);  // the preload and the request
  EXPECT_GT(stats.models(0).last_used_timestamp(), 1700000000000LL);

  monolithic::UnloadModelRequest unload;
  unload.set_model_id("other");
  monolithic::UnloadModelResponse unloaded;
  grpc::ClientContext c5;
  ASSERT_TRUE(stub_->UnloadModel(&c5, unload, &unloaded).ok());
  EXPECT_TRUE(unloaded.success());
  grpc::ClientContext c6;
  monolithic::HealthResponse health;
  ASSERT_TRUE(stub_->Health(&c6, {}, &health).ok());
  EXPECT_EQ(health.loaded_models(), 1);
  EXPECT_EQ(health.max_models(), 4);
}

TEST_F(ServerTest, RegistryEvictsTheIdleModelWhenFull) {
  server::RegistryOptions one;
  one.max_loaded = 1;
  start(one);
  auto r = request(3);
  r.set_model_id("other");
  monolithic::CompositeBatchResponse response;
  ASSERT_TRUE(call(r, &response).ok());
  EXPECT_FALSE(response.model_loaded());  // loaded for this request
  const auto status = server_->registry().status();
  EXPECT_FALSE(status[0].loaded);  // "demo" was evicted
  EXPECT_TRUE(status[1].loaded);
}

TEST_F(ServerTest, AModelIsWarmedUpWhenItLoadsAndAPreloadedOneHasItsFramesDecoded) {
  // "demo" is preloaded: the scheduler plans with a measured batch time before any request,
  // and every template frame (10) and its canvas is decoded.
  const auto demo = server_->registry().acquire("demo");
  EXPECT_TRUE(demo.was_loaded);
  EXPECT_GT(demo.model->scheduler->expected_batch_time().count(), 0);
  EXPECT_EQ(demo.model->scheduler->stats().batches, 0u);  // warm-up runs are not batches
  EXPECT_EQ(demo.model->avatar->frame_cache().size(), 10u);
  EXPECT_EQ(demo.model->avatar->canvas_cache().size(), 10u);
  // "other" loads on first use: warmed up too, its frames decoded as they are needed.
  EXPECT_FALSE(server_->registry().status()[1].loaded);
  const auto other = server_->registry().acquire("other");
  EXPECT_FALSE(other.was_loaded);
  EXPECT_GT(other.model->scheduler->expected_batch_time().count(), 0);
  EXPECT_LE(other.model->avatar->frame_cache().size(), 1u);  // open() reads the first frame
}

TEST_F(ServerTest, IdleModelsAreUnloaded) {
  server::RegistryOptions idle;
  idle.idle_unload_s = 1;
  start(idle);
  monolithic::CompositeBatchResponse response;
  ASSERT_TRUE(call(request(2), &response).ok());
  EXPECT_TRUE(server_->registry().status()[0].loaded);
  bool unloaded = false;
  for (int i = 0; i < 60 && !unloaded; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    unloaded = !server_->registry().status()[0].loaded;
  }
  EXPECT_TRUE(unloaded) << "still loaded after 6 s with idle_unload_s = 1";
  // The next request loads it again.
  ASSERT_TRUE(call(request(2), &response).ok());
  EXPECT_FALSE(response.model_loaded());
}

TEST_F(ServerTest, ConcurrentClientsGetTheirOwnFrames) {
  monolithic::CompositeBatchResponse expected;
  ASSERT_TRUE(call(request(6), &expected).ok());
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      monolithic::CompositeBatchResponse got;
      if (call(request(6), &got).ok() && got.composited_frames_size() == 6) {
        bool same = true;
        for (int i = 0; i < 6; ++i)
          same &= got.composited_frames(i) == expected.composited_frames(i);
        good += same;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good, 8);
}

TEST_F(ServerTest, HttpEndpoints) {
  EXPECT_EQ(http_get("/healthz"), "200 ok\n");
  EXPECT_EQ(http_get("/readyz"), "200 ready\n");
  monolithic::CompositeBatchResponse r;
  ASSERT_TRUE(call(request(2), &r).ok());
  const std::string metrics = http_get("/metrics");
  EXPECT_EQ(metrics.rfind("200 ", 0), 0u);
  EXPECT_NE(metrics.find("lipsync_requests_total{method=\"InferBatchComposite\",code=\"OK\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("lipsync_frames_total 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("lipsync_loaded_models 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("lipsync_stage_seconds_count{stage=\"generator\"}"), std::string::npos);
  EXPECT_NE(metrics.find("lipsync_stage_seconds_count{stage=\"mel\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("lipsync_batch_size_count"), std::string::npos);
  EXPECT_NE(metrics.find("lipsync_frame_cache_bytes{model=\"demo\"}"), std::string::npos);
  EXPECT_NE(metrics.find("lipsync_heap_bytes{state=\"in_use\"} "), std::string::npos);
  EXPECT_NE(metrics.find("lipsync_heap_bytes{state=\"free\"} "), std::string::npos);
  EXPECT_NE(metrics.find("lipsync_model_provider{model=\"demo\",provider=\"cpu\"} 8"),
            std::string::npos)
      << metrics;
  // Each family is declared once, and every sample follows its own family's TYPE line.
  std::istringstream lines(metrics.substr(metrics.find("\n# HELP") + 1));
  std::set<std::string> declared;
  std::string family;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(declared.insert(family).second) << family << " is declared twice";
    } else if (line.rfind('#', 0) != 0 && !line.empty()) {
      const std::string name = line.substr(0, line.find_first_of("{ "));
      EXPECT_TRUE(name == family || name.rfind(family + "_", 0) == 0) << line;
    }
  }
  EXPECT_GE(declared.size(), 30u);
  EXPECT_EQ(http_get("/nope").substr(0, 3), "404");
}

// Server reflection, spoken with a generic stub and a hand-encoded request (its generated classes
// live inside libgrpc++_reflection): ServerReflectionRequest{list_services = ""} is field 7,
// length-delimited, empty: bytes 0x3a 0x00.
TEST_F(ServerTest, ReflectionListsOurServices) {
  grpc::GenericStub stub(channel_);
  grpc::ClientContext context;
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  const char request[] = {0x3a, 0x00};
  grpc::Slice slice(request, sizeof request);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(in.Dump(&slices).ok());
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  EXPECT_NE(bytes.find("monolithic.MonolithicService"), std::string::npos);
  EXPECT_NE(bytes.find("lipsync.v1.LipSync"), std::string::npos);
  EXPECT_NE(bytes.find("grpc.health.v1.Health"), std::string::npos);
  context.TryCancel();
  call->Finish(nullptr, reinterpret_cast<void*>(4));
  grpc::Status status;
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(ServerTest, StandardHealthServiceSaysServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, {}, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace lipsync
