#include "render/mp4_writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <vector>

#include "audio/video_frames.h"
#include "core/check.h"
#include "core/error.h"
#include "core/thread_budget.h"

namespace lipsync::render {
namespace {

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
  std::vector<float> pending;      // audio received but not yet encoded
  std::int64_t audio_written = 0;  // samples sent to the AAC encoder (absolute position)
  int frames = 0;
  int width = 0, height = 0;
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

  void open_container() {
    check(avformat_alloc_output_context2(&format, nullptr, "mp4", partial.c_str()),
          "creating the container");
  }

  void add_video_stream(const OutputOptions& options) {
    const AVCodec* h264 = avcodec_find_encoder_by_name("libx264");
    if (h264 == nullptr) h264 = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (h264 == nullptr) throw Error::unavailable(where + ": no H.264 encoder in this FFmpeg");
    video_stream = avformat_new_stream(format, nullptr);
    video = avcodec_alloc_context3(h264);
    video->width = width;
    video->height = height;
    video->pix_fmt = AV_PIX_FMT_YUV420P;
    video->time_base = AVRational{1, audio::kFramesPerSecond};
    video->framerate = AVRational{audio::kFramesPerSecond, 1};
    video->gop_size = 250;
    video->thread_count = core::thread_budget();  // x264's own default is 1.5 per core
    if (format->oformat->flags & AVFMT_GLOBALHEADER) video->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set(video->priv_data, "crf", std::to_string(options.mp4_crf).c_str(), 0);
    if (av_opt_set(video->priv_data, "preset", options.mp4_preset.c_str(), 0) < 0) {
      throw Error::invalid_input("render.mp4_preset: '" + options.mp4_preset +
                                 "' is not an x264 preset (ultrafast .. veryslow)");
    }
    check(avcodec_open2(video, h264, nullptr), "opening the H.264 encoder");
    check(avcodec_parameters_from_context(video_stream->codecpar, video), "video parameters");
    video_stream->time_base = video->time_base;
  }

  void add_audio_stream(const OutputOptions& options) {
    const AVCodec* aac = avcodec_find_encoder(AV_CODEC_ID_AAC);
    if (aac == nullptr) throw Error::unavailable(where + ": no AAC encoder in this FFmpeg");
    audio_stream = avformat_new_stream(format, nullptr);
    audio = avcodec_alloc_context3(aac);
    audio->sample_fmt = AV_SAMPLE_FMT_FLTP;
    audio->sample_rate = audio::kSampleRateHz;
    av_channel_layout_default(&audio->ch_layout, 1);
    audio->bit_rate = options.mp4_audio_bitrate;
    audio->time_base = AVRational{1, audio::kSampleRateHz};
    if (format->oformat->flags & AVFMT_GLOBALHEADER) audio->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    check(avcodec_open2(audio, aac, nullptr), "opening the AAC encoder");
    check(avcodec_parameters_from_context(audio_stream->codecpar, audio), "audio parameters");
    audio_stream->time_base = audio->time_base;
    sound = av_frame_alloc();
    sound->format = audio->sample_fmt;
    sound->sample_rate = audio::kSampleRateHz;
    av_channel_layout_copy(&sound->ch_layout, &audio->ch_layout);
    sound->nb_samples = audio->frame_size;
    check(av_frame_get_buffer(sound, 0), "audio buffer");
  }

  void allocate_picture() {
    picture = av_frame_alloc();
    picture->format = AV_PIX_FMT_YUV420P;
    picture->width = width;
    picture->height = height;
    check(av_frame_get_buffer(picture, 0), "video buffer");
    packet = av_packet_alloc();
    sws = sws_getContext(width, height, AV_PIX_FMT_BGR24, width, height, AV_PIX_FMT_YUV420P,
                         SWS_BICUBIC, nullptr, nullptr, nullptr);
  }

  void write_header() {
    const int rc = avio_open(&format->pb, partial.c_str(), AVIO_FLAG_WRITE);
    if (rc < 0) {
      throw Error::invalid_input(where + ": cannot create " + partial.string() + ": " +
                                 av_error(rc));
    }
    AVDictionary* muxer_options = nullptr;
    av_dict_set(&muxer_options, "movflags", "+faststart", 0);
    const int header = avformat_write_header(format, &muxer_options);
    av_dict_free(&muxer_options);
    check(header, "writing the header");
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

  // Encodes audio up to sample `until` in whole AAC frames from what has arrived; at the end
  // (`final_frame`) the last partial frame too, with silence past the received audio.
  void encode_audio_until(std::int64_t until, bool final_frame) {
    if (audio == nullptr) return;
    const int frame_size = audio->frame_size;
    const std::int64_t received = audio_written + static_cast<std::int64_t>(pending.size());
    std::size_t used = 0;
    while (audio_written < until) {
      const std::int64_t end = final_frame ? until : std::min(until, received);
      const int n = static_cast<int>(std::min<std::int64_t>(frame_size, end - audio_written));
      if (n <= 0 || (n < frame_size && !final_frame)) break;  // wait for a whole frame
      check(av_frame_make_writable(sound), "audio frame");
      sound->nb_samples = n;
      auto* dst = reinterpret_cast<float*>(sound->data[0]);
      for (int i = 0; i < n; ++i) {
        dst[i] = used + static_cast<std::size_t>(i) < pending.size() ? pending[used + i] : 0.0f;
      }
      sound->pts = audio_written;
      encode(audio, audio_stream, sound);
      audio_written += n;
      used = std::min(pending.size(), used + static_cast<std::size_t>(n));
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
  }
};

Mp4Writer::Mp4Writer(const std::filesystem::path& path, int width, int height, bool with_audio,
                     const OutputOptions& options)
    : impl_(std::make_unique<Impl>()) {
  options.validate();
  auto& m = *impl_;
  m.path = path;
  m.partial = path;
  m.partial += ".partial";
  m.where = "mp4 " + path.string();
  m.width = width - width % 2;
  m.height = height - height % 2;
  if (m.width < 2 || m.height < 2) throw Error::invalid_input(m.where + ": frame too small");
  av_log_set_level(AV_LOG_ERROR);  // the encoders' statistics are not for our users' terminals
  m.open_container();
  m.add_video_stream(options);
  if (with_audio) m.add_audio_stream(options);
  m.allocate_picture();
  m.write_header();
}

Mp4Writer::~Mp4Writer() = default;

int Mp4Writer::frames_written() const {
  return impl_->frames;
}

void Mp4Writer::add_audio(std::span<const float> samples) {
  auto& m = *impl_;
  LIPSYNC_CHECK(!m.finished);
  if (m.audio == nullptr) return;
  // Audio past the video's end so far is kept; what the video already covers is encoded.
  m.pending.insert(m.pending.end(), samples.begin(), samples.end());
  m.encode_audio_until(audio::samples_for_frames(m.frames), false);
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
  m.encode_audio_until(audio::samples_for_frames(m.frames), false);
}

void Mp4Writer::finish() {
  auto& m = *impl_;
  LIPSYNC_CHECK(!m.finished);
  m.encode(m.video, m.video_stream, nullptr);
  if (m.audio != nullptr) {
    m.encode_audio_until(audio::samples_for_frames(m.frames), true);
    m.encode(m.audio, m.audio_stream, nullptr);
  }
  m.check(av_write_trailer(m.format), "writing the trailer");
  avio_closep(&m.format->pb);
  std::error_code ec;
  std::filesystem::rename(m.partial, m.path, ec);
  if (ec) {
    throw Error::invalid_input(m.where + ": cannot rename the finished file: " + ec.message());
  }
  m.finished = true;
}

}  // namespace lipsync::render
