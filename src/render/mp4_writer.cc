#include "render/mp4_writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <span>
#include <vector>

#include "core/check.h"
#include "core/error.h"

namespace lipsync::render {
namespace {

constexpr int kFps = 25;
constexpr int kAudioRate = 16000;
constexpr int kSamplesPerFrame = kAudioRate / kFps;  // 640

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

}  // namespace

struct Mp4Writer::Impl {
  std::filesystem::path path;
  std::filesystem::path partial;
  std::string where;
  AVFormatContext* format = nullptr;
  AVCodecContext* video = nullptr;
  AVCodecContext* audio = nullptr;
  AVStream* video_stream = nullptr;
  AVStream* audio_stream = nullptr;
  AVFrame* picture = nullptr;
  AVFrame* sound = nullptr;
  AVPacket* packet = nullptr;
  SwsContext* sws = nullptr;
  std::span<const float> samples;
  std::int64_t audio_written = 0;  // samples sent to the AAC encoder
  int frames = 0;
  int width = 0, height = 0;
  bool header_written = false;
  bool finished = false;

  ~Impl() {
    if (format != nullptr && format->pb != nullptr) avio_closep(&format->pb);
    sws_freeContext(sws);
    av_packet_free(&packet);
    av_frame_free(&picture);
    av_frame_free(&sound);
    avcodec_free_context(&video);
    avcodec_free_context(&audio);
    avformat_free_context(format);
    if (!finished) {
      std::error_code ec;
      std::filesystem::remove(partial, ec);
    }
  }

  void check(int rc, const char* what) const {
    if (rc < 0) throw Error::internal(where + ": " + what + ": " + av_error(rc));
  }

  // Sends a frame (or nullptr to flush) and writes every packet that comes out.
  void encode(AVCodecContext* codec, AVStream* stream, AVFrame* frame) {
    check(avcodec_send_frame(codec, frame), "encoding");
    while (true) {
      const int rc = avcodec_receive_packet(codec, packet);
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check(rc, "encoding");
      // Every video frame lasts one tick of 1/25 s; without it the last frame has no duration
      // and players (and demuxers) cut it.
      if (codec->codec_type == AVMEDIA_TYPE_VIDEO && packet->duration == 0) packet->duration = 1;
      av_packet_rescale_ts(packet, codec->time_base, stream->time_base);
      packet->stream_index = stream->index;
      check(av_interleaved_write_frame(format, packet), "writing");
    }
  }

  // Encodes audio up to `until` samples (padding with silence past the input's end).
  void encode_audio_until(std::int64_t until, bool final_frame) {
    if (audio == nullptr) return;
    const int frame_size = audio->frame_size;
    while (audio_written < until) {
      const int n = static_cast<int>(std::min<std::int64_t>(frame_size, until - audio_written));
      if (n < frame_size && !final_frame) return;  // wait for a whole frame
      check(av_frame_make_writable(sound), "audio frame");
      sound->nb_samples = n;
      auto* dst = reinterpret_cast<float*>(sound->data[0]);
      for (int i = 0; i < n; ++i) {
        const std::int64_t at = audio_written + i;
        dst[i] = at < static_cast<std::int64_t>(samples.size()) ? samples[at] : 0.0f;
      }
      sound->pts = audio_written;
      encode(audio, audio_stream, sound);
      audio_written += n;
    }
  }
};

Mp4Writer::Mp4Writer(const std::filesystem::path& path, int width, int height,
                     std::span<const float> audio_samples, const Mp4Options& options)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.path = path;
  m.partial = path;
  m.partial += ".partial";
  m.where = "mp4 " + path.string();
  m.width = width - width % 2;
  m.height = height - height % 2;
  if (m.width < 2 || m.height < 2) throw Error::invalid_input(m.where + ": frame too small");
  if (options.crf < 0 || options.crf > 51) {
    throw Error::invalid_input("render.mp4_crf: " + std::to_string(options.crf) +
                               " is out of range; expected 0 to 51");
  }
  m.samples = audio_samples;
  av_log_set_level(AV_LOG_ERROR);  // the encoders' statistics are not for our users' terminals

  m.check(avformat_alloc_output_context2(&m.format, nullptr, "mp4", m.partial.c_str()),
          "creating the container");
  const AVCodec* h264 = avcodec_find_encoder_by_name("libx264");
  if (h264 == nullptr) h264 = avcodec_find_encoder(AV_CODEC_ID_H264);
  if (h264 == nullptr) throw Error::unavailable(m.where + ": no H.264 encoder in this FFmpeg");
  m.video_stream = avformat_new_stream(m.format, nullptr);
  m.video = avcodec_alloc_context3(h264);
  m.video->width = m.width;
  m.video->height = m.height;
  m.video->pix_fmt = AV_PIX_FMT_YUV420P;
  m.video->time_base = AVRational{1, kFps};
  m.video->framerate = AVRational{kFps, 1};
  m.video->gop_size = 250;
  if (m.format->oformat->flags & AVFMT_GLOBALHEADER) m.video->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  av_opt_set(m.video->priv_data, "crf", std::to_string(options.crf).c_str(), 0);
  if (av_opt_set(m.video->priv_data, "preset", options.preset.c_str(), 0) < 0) {
    throw Error::invalid_input("render.mp4_preset: '" + options.preset +
                               "' is not an x264 preset (ultrafast .. veryslow)");
  }
  m.check(avcodec_open2(m.video, h264, nullptr), "opening the H.264 encoder");
  m.check(avcodec_parameters_from_context(m.video_stream->codecpar, m.video), "video parameters");
  m.video_stream->time_base = m.video->time_base;

  if (!m.samples.empty()) {
    const AVCodec* aac = avcodec_find_encoder(AV_CODEC_ID_AAC);
    if (aac == nullptr) throw Error::unavailable(m.where + ": no AAC encoder in this FFmpeg");
    m.audio_stream = avformat_new_stream(m.format, nullptr);
    m.audio = avcodec_alloc_context3(aac);
    m.audio->sample_fmt = AV_SAMPLE_FMT_FLTP;
    m.audio->sample_rate = kAudioRate;
    av_channel_layout_default(&m.audio->ch_layout, 1);
    m.audio->bit_rate = options.audio_bitrate;
    m.audio->time_base = AVRational{1, kAudioRate};
    if (m.format->oformat->flags & AVFMT_GLOBALHEADER) {
      m.audio->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    }
    m.check(avcodec_open2(m.audio, aac, nullptr), "opening the AAC encoder");
    m.check(avcodec_parameters_from_context(m.audio_stream->codecpar, m.audio), "audio parameters");
    m.audio_stream->time_base = m.audio->time_base;
    m.sound = av_frame_alloc();
    m.sound->format = m.audio->sample_fmt;
    m.sound->sample_rate = kAudioRate;
    av_channel_layout_copy(&m.sound->ch_layout, &m.audio->ch_layout);
    m.sound->nb_samples = m.audio->frame_size;
    m.check(av_frame_get_buffer(m.sound, 0), "audio buffer");
  }

  m.picture = av_frame_alloc();
  m.picture->format = AV_PIX_FMT_YUV420P;
  m.picture->width = m.width;
  m.picture->height = m.height;
  m.check(av_frame_get_buffer(m.picture, 0), "video buffer");
  m.packet = av_packet_alloc();
  m.sws = sws_getContext(m.width, m.height, AV_PIX_FMT_BGR24, m.width, m.height, AV_PIX_FMT_YUV420P,
                         SWS_BICUBIC, nullptr, nullptr, nullptr);

  const int rc = avio_open(&m.format->pb, m.partial.c_str(), AVIO_FLAG_WRITE);
  if (rc < 0) {
    throw Error::invalid_input(m.where + ": cannot create " + m.partial.string() + ": " +
                               av_error(rc));
  }
  AVDictionary* muxer_options = nullptr;
  av_dict_set(&muxer_options, "movflags", "+faststart", 0);
  const int header = avformat_write_header(m.format, &muxer_options);
  av_dict_free(&muxer_options);
  m.check(header, "writing the header");
  m.header_written = true;
}

Mp4Writer::~Mp4Writer() = default;

int Mp4Writer::frames_written() const {
  return impl_->frames;
}

void Mp4Writer::write(const cv::Mat& bgr) {
  auto& m = *impl_;
  LIPSYNC_CHECK(!m.finished);
  LIPSYNC_CHECK(bgr.type() == CV_8UC3 && bgr.cols >= m.width && bgr.rows >= m.height);
  m.check(av_frame_make_writable(m.picture), "video frame");
  const uint8_t* src[1] = {bgr.data};
  const int stride[1] = {static_cast<int>(bgr.step)};
  sws_scale(m.sws, src, stride, 0, m.height, m.picture->data, m.picture->linesize);
  m.picture->pts = m.frames;
  m.encode(m.video, m.video_stream, m.picture);
  ++m.frames;
  m.encode_audio_until(static_cast<std::int64_t>(m.frames) * kSamplesPerFrame, false);
}

void Mp4Writer::finish() {
  auto& m = *impl_;
  LIPSYNC_CHECK(!m.finished);
  m.encode(m.video, m.video_stream, nullptr);
  if (m.audio != nullptr) {
    m.encode_audio_until(static_cast<std::int64_t>(m.frames) * kSamplesPerFrame, true);
    m.encode(m.audio, m.audio_stream, nullptr);
  }
  m.check(av_write_trailer(m.format), "writing the trailer");
  m.header_written = false;
  avio_closep(&m.format->pb);
  std::error_code ec;
  std::filesystem::rename(m.partial, m.path, ec);
  if (ec)
    throw Error::invalid_input(m.where + ": cannot rename the finished file: " + ec.message());
  m.finished = true;
}

}  // namespace lipsync::render
