#include "avatar/video_reader.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

#include "core/error.h"

namespace lipsync::avatar {
namespace {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

// The containers a template video may be, by FFmpeg demuxer name. Formats that name other files
// or URLs (HLS and DASH playlists, concat and ffconcat lists, image sequences) are not among
// them: a "video" must not read other files into an avatar.
constexpr const char* kVideoDemuxers =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,mpegvideo,ogg,asf,h264,hevc,m4v,"
    "mjpeg,yuv4mpegpipe,gif";

// Opens `path` as a local file of one of kVideoDemuxers: no protocol but `file`, no demuxer
// outside the list. Returns FFmpeg's code.
int open_video_file(AVFormatContext** format, const std::filesystem::path& path) {
  AVDictionary* options = nullptr;
  av_dict_set(&options, "protocol_whitelist", "file", 0);
  av_dict_set(&options, "format_whitelist", kVideoDemuxers, 0);
  // The file: protocol, so that a name with a colon is not taken for another protocol.
  const std::string url = "file:" + path.string();
  const int rc = avformat_open_input(format, url.c_str(), nullptr, &options);
  av_dict_free(&options);
  return rc;
}

}  // namespace

struct VideoReader::Impl {
  std::string where;
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* frame = nullptr;
  SwsContext* sws = nullptr;
  int stream = -1;
  int frames = 0;       // decoded so far
  int first_width = 0;  // of frame 0: every frame must have its size
  int first_height = 0;
  bool flushing = false;
  bool done = false;

  ~Impl() {
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&codec);
    avformat_close_input(&format);
  }
};

VideoReader::VideoReader(const std::filesystem::path& path) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.where = "video " + path.string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error::not_found(m.where + ": no such file");
  int rc = open_video_file(&m.format, path);
  if (rc < 0) {
    throw Error::invalid_input(m.where + ": cannot open as a video file (" + av_error(rc) +
                               "); expected MP4, MOV, MKV, WebM, AVI, FLV, MPEG or MJPEG");
  }
  rc = avformat_find_stream_info(m.format, nullptr);
  if (rc < 0) throw Error::invalid_input(m.where + ": no stream info: " + av_error(rc));
  const AVCodec* decoder = nullptr;
  m.stream = av_find_best_stream(m.format, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
  if (m.stream < 0 || decoder == nullptr) {
    throw Error::invalid_input(m.where + ": no decodable video stream");
  }
  m.codec = avcodec_alloc_context3(decoder);
  avcodec_parameters_to_context(m.codec, m.format->streams[m.stream]->codecpar);
  rc = avcodec_open2(m.codec, decoder, nullptr);
  if (rc < 0) throw Error::invalid_input(m.where + ": cannot open the decoder: " + av_error(rc));
  m.packet = av_packet_alloc();
  m.frame = av_frame_alloc();
}

VideoReader::~VideoReader() = default;

int VideoReader::width() const {
  return impl_->codec->width;
}
int VideoReader::height() const {
  return impl_->codec->height;
}

double VideoReader::fps() const {
  const AVRational r = impl_->format->streams[impl_->stream]->avg_frame_rate;
  return r.den > 0 ? av_q2d(r) : 0.0;
}

bool VideoReader::read(cv::Mat& out) {
  auto& m = *impl_;
  while (!m.done) {
    const int rc = avcodec_receive_frame(m.codec, m.frame);
    if (rc == 0) {
      if (m.frames == 0) {
        m.first_width = m.frame->width;
        m.first_height = m.frame->height;
      } else if (m.frame->width != m.first_width || m.frame->height != m.first_height) {
        const std::string size =
            std::to_string(m.frame->width) + "x" + std::to_string(m.frame->height);
        av_frame_unref(m.frame);
        throw Error::invalid_input(m.where + ": frame " + std::to_string(m.frames) + " is " + size +
                                   " but frame 0 is " + std::to_string(m.first_width) + "x" +
                                   std::to_string(m.first_height) +
                                   "; a template video keeps one size");
      }
      ++m.frames;
      m.sws = sws_getCachedContext(m.sws, m.frame->width, m.frame->height,
                                   static_cast<AVPixelFormat>(m.frame->format), m.frame->width,
                                   m.frame->height, AV_PIX_FMT_BGR24, SWS_BICUBIC, nullptr, nullptr,
                                   nullptr);
      out.create(m.frame->height, m.frame->width, CV_8UC3);
      uint8_t* dst[1] = {out.data};
      const int dst_stride[1] = {static_cast<int>(out.step)};
      sws_scale(m.sws, m.frame->data, m.frame->linesize, 0, m.frame->height, dst, dst_stride);
      av_frame_unref(m.frame);
      return true;
    }
    if (rc == AVERROR_EOF) {
      m.done = true;
      break;
    }
    if (rc != AVERROR(EAGAIN))
      throw Error::invalid_input(m.where + ": decoding failed: " + av_error(rc));
    if (m.flushing) continue;
    // Feed the next packet of our stream (or start flushing at the end of the file).
    while (true) {
      const int read = av_read_frame(m.format, m.packet);
      if (read < 0) {
        avcodec_send_packet(m.codec, nullptr);
        m.flushing = true;
        break;
      }
      if (m.packet->stream_index == m.stream) {
        const int sent = avcodec_send_packet(m.codec, m.packet);
        av_packet_unref(m.packet);
        if (sent < 0 && sent != AVERROR(EAGAIN)) {
          throw Error::invalid_input(m.where + ": corrupt packet: " + av_error(sent));
        }
        break;
      }
      av_packet_unref(m.packet);
    }
  }
  return false;
}

bool looks_like_video(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  AVFormatContext* format = nullptr;
  if (open_video_file(&format, path) < 0) return false;
  bool video = avformat_find_stream_info(format, nullptr) >= 0 &&
               av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0) >= 0;
  // A still image also opens as a one-frame "video" (image2 demuxer); those are not videos here.
  if (video && format->iformat != nullptr &&
      std::string(format->iformat->name).find("image2") != std::string::npos) {
    video = false;
  }
  if (video && format->iformat != nullptr &&
      std::string(format->iformat->name).find("_pipe") != std::string::npos) {
    video = false;
  }
  avformat_close_input(&format);
  return video;
}

}  // namespace lipsync::avatar
