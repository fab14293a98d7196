// Fuzzes the gRPC requests the raw-bytes handlers parse: each message goes through
// grpc::SerializationTraits<Request>::Deserialize (what BidiCall and MonolithicService do with
// the ByteBuffer), then through the project's public checks in the order a call makes them:
//   byte 0 % 3 = 0: lipsync.v1 Stream   (StreamConfig -> check_wire_config, the model id;
//                                         audio -> WireAudio::decode; end -> finish)
//                1: lipsync.v1 Live     (LiveConfig likewise; speech, segment_end, interrupt)
//                2: monolithic InferBatchComposite (the model id; raw_audio decoded as float32,
//                                         checked and resampled as the call's worker does)
// then messages, each a 2-byte big-endian length and that many bytes. A call ends at its first
// rejected message, as the services end it with INVALID_ARGUMENT (to_status()).
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/grpc_library.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "audio/audio_file.h"
#include "audio/mel_constants.h"
#include "audio/mel_spectrogram.h"
#include "audio/resampler.h"
#include "fuzz_util.h"
#include "lipsync/v1/lipsync.pb.h"
#include "monolithic.pb.h"
#include "server/grpc_status.h"
#include "server/registry.h"
#include "server/wire_audio.h"

namespace {

using namespace lipsync;

grpc::internal::GrpcLibraryInitializer g_grpc_initializer;  // before any ByteBuffer

// The configured models: "demo" (never loaded here).
server::Registry& registry() {
  static server::Registry* r = new server::Registry(
      {{"demo", "/nonexistent/avatar", "/nonexistent/models", false}}, {}, {}, {}, {});
  return *r;
}

// The next message of the input, parsed as the handlers parse it; nullopt when the input has no
// more messages; a false `ok` when the bytes are not a valid Request.
template <class Request>
std::optional<std::pair<bool, Request>> next_message(std::span<const std::uint8_t>& in) {
  if (in.size() < 2) return std::nullopt;
  const std::size_t n = std::min<std::size_t>((in[0] << 8) | in[1], in.size() - 2);
  grpc::Slice slice(in.data() + 2, n);
  in = in.subspan(2 + n);
  grpc::ByteBuffer bytes(&slice, 1);
  Request message;
  const bool ok = grpc::SerializationTraits<Request>::Deserialize(&bytes, &message).ok();
  return std::pair{ok, std::move(message)};
}

// One Stream or Live call's audio side; throws Error to end the call.
class Call {
 public:
  void configure(int format, int encoding, int sample_rate, std::int32_t start_frame,
                 const std::string& model) {
    if (configured_) throw Error::invalid_input("a second config message");
    configured_ = true;
    const int rate = server::check_wire_config(format, encoding, sample_rate);
    (void)server::frame_encoding_for(static_cast<v1::StreamConfig::Format>(format));
    if (start_frame < 0) throw Error::invalid_input("start_frame is negative");
    registry().check_configured(model);
    audio_.configure(encoding == v1::StreamConfig::ENCODING_S16LE, rate);
  }
  void audio(const std::string& bytes) {
    if (!configured_) throw Error::invalid_input("audio before the config message");
    (void)audio_.decode(bytes, "audio chunk");
  }
  void end() {
    if (!configured_) throw Error::invalid_input("the end before the config message");
    (void)audio_.finish("audio");
  }
  void interrupt() { audio_.drop_partial(); }

 private:
  bool configured_ = false;
  server::WireAudio audio_;
};

void stream_call(std::span<const std::uint8_t> in) {
  Call call;
  while (auto m = next_message<v1::StreamRequest>(in)) {
    if (!m->first) throw Error::invalid_input("not a valid StreamRequest");
    const v1::StreamRequest& r = m->second;
    switch (r.message_case()) {
      case v1::StreamRequest::kConfig: {
        const v1::StreamConfig& c = r.config();
        call.configure(c.format(), c.encoding(), c.sample_rate(), c.start_frame(), c.model_id());
        break;
      }
      case v1::StreamRequest::kAudio:
        call.audio(r.audio());
        break;
      case v1::StreamRequest::kEnd:
        call.end();
        return;
      default:
        throw Error::invalid_input("an empty StreamRequest");
    }
  }
}

void live_call(std::span<const std::uint8_t> in) {
  Call call;
  while (auto m = next_message<v1::LiveRequest>(in)) {
    if (!m->first) throw Error::invalid_input("not a valid LiveRequest");
    const v1::LiveRequest& r = m->second;
    switch (r.message_case()) {
      case v1::LiveRequest::kConfig: {
        const v1::LiveConfig& c = r.config();
        call.configure(c.format(), c.encoding(), c.sample_rate(), c.start_frame(), c.model_id());
        break;
      }
      case v1::LiveRequest::kSpeech:
        call.audio(r.speech());
        break;
      case v1::LiveRequest::kSegmentEnd:
        call.end();
        break;
      case v1::LiveRequest::kInterrupt:
        call.interrupt();
        break;
      default:
        throw Error::invalid_input("an empty LiveRequest");
    }
  }
}

void composite_call(std::span<const std::uint8_t> in) {
  auto m = next_message<monolithic::CompositeBatchRequest>(in);
  if (!m) return;
  if (!m->first) throw Error::invalid_input("not a valid CompositeBatchRequest");
  const monolithic::CompositeBatchRequest& r = m->second;
  registry().check_configured(r.model_id());
  // The call's worker: float32 samples, finite, at 16 kHz. (The field checks before it,
  // check_request in monolithic_service.cc, are not public: only the rate's range is repeated.)
  std::vector<float> samples = audio::decode_raw(std::as_bytes(std::span(r.raw_audio())),
                                                 audio::RawEncoding::kF32le, "raw_audio");
  audio::validate_samples(samples, "raw_audio");
  const int rate = r.sample_rate() == 0 ? audio::kSampleRateHz : r.sample_rate();
  if (rate < 8000 || rate > 192000) return;
  if (rate != audio::kSampleRateHz) (void)audio::resample(samples, rate, audio::kSampleRateHz);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::span<const std::uint8_t> in(data + 1, size - 1);
  try {
    switch (data[0] % 3) {
      case 0:
        stream_call(in);
        break;
      case 1:
        live_call(in);
        break;
      default:
        composite_call(in);
        break;
    }
  } catch (const Error& e) {
    // The call ends with the status the services send; kInternal would be a bug.
    const grpc::Status status = server::to_status(e);
    if (status.ok() || e.code() == Error::Code::kInternal) fuzz::finding(e.message());
  }
  return 0;
}
