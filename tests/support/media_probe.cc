#include "support/media_probe.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include <gtest/gtest.h>

namespace lipsync::testing {

MediaProbe probe_media(const std::filesystem::path& path) {
  MediaProbe p;
  AVFormatContext* fmt = nullptr;
  if (avformat_open_input(&fmt, path.c_str(), nullptr, nullptr) < 0) {
    ADD_FAILURE() << "cannot open " << path;
    return p;
  }
  avformat_find_stream_info(fmt, nullptr);
  int video = -1;
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    const AVCodecParameters* par = fmt->streams[i]->codecpar;
    if (par->codec_type == AVMEDIA_TYPE_VIDEO) {
      ++p.video_streams;
      video = static_cast<int>(i);
      p.video_codec = avcodec_get_name(par->codec_id);
      p.width = par->width;
      p.height = par->height;
    } else if (par->codec_type == AVMEDIA_TYPE_AUDIO) {
      ++p.audio_streams;
      p.audio_codec = avcodec_get_name(par->codec_id);
      const AVStream* s = fmt->streams[i];
      p.audio_seconds = s->duration * av_q2d(s->time_base);
    }
  }
  AVPacket* pkt = av_packet_alloc();
  while (av_read_frame(fmt, pkt) >= 0) {
    if (pkt->stream_index == video) ++p.video_frames;
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
  if (video >= 0) {
    const AVRational rate = fmt->streams[video]->avg_frame_rate;
    if (rate.num > 0) p.video_seconds = p.video_frames / av_q2d(rate);
  }
  avformat_close_input(&fmt);
  return p;
}

}  // namespace lipsync::testing
