#!/usr/bin/env python3
"""A Python client of a lipsync.cpp server: the old API (monolithic.MonolithicService) and the
streaming API (lipsync.v1.LipSync/Stream).

Make the stubs once, into gen/ beside this file (from examples/python; grpc_tools needs the
folder to exist):
    mkdir -p gen
    python3 -m grpc_tools.protoc -I ../../proto --python_out=gen --grpc_python_out=gen \
        lipsync/v1/lipsync.proto monolithic.proto
Then:
    python3 lipsync_client.py models
    python3 lipsync_client.py stream --model demo --audio speech.wav -o frames/
    python3 lipsync_client.py batch  --model demo --audio speech.wav -o frames/

Audio: a WAV file, 16-bit PCM mono, any sample rate for `stream` (the server resamples), 16 kHz
for `batch`. Frames are written as frames/00000.jpg, 00001.jpg, ...
"""
import argparse
import array
import os
import sys
import wave

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402

import monolithic_pb2  # noqa: E402
import monolithic_pb2_grpc  # noqa: E402
from lipsync.v1 import lipsync_pb2, lipsync_pb2_grpc  # noqa: E402

SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps


def read_wav(path):
    """Returns (samples as array('h'), sample rate) of a 16-bit PCM mono WAV."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            sys.exit(f"{path}: expected 16-bit PCM mono "
                     f"(sox {path} -b 16 -c 1 out.wav)")
        samples = array.array("h", w.readframes(w.getnframes()))
        if sys.byteorder == "big":
            samples.byteswap()
        return samples, w.getframerate()


def clip_frames(samples_16k):
    """Frames the server makes for a clip (REFERENCE.md section 3: L windows + 2)."""
    mel_frames = samples_16k // 200 + 1
    return int((mel_frames - 16) / 80.0 * 25.0) + 2 + 2


def write_frames(out_dir, first_index, frames):
    os.makedirs(out_dir, exist_ok=True)
    for i, jpeg in enumerate(frames):
        with open(os.path.join(out_dir, f"{first_index + i:05d}.jpg"), "wb") as f:
            f.write(jpeg)


def cmd_models(channel, args):
    stub = monolithic_pb2_grpc.MonolithicServiceStub(channel)
    for m in stub.ListModels(monolithic_pb2.ListModelsRequest(), timeout=args.timeout).models:
        print(m.model_id, "loaded" if m.loaded else "not loaded")


def cmd_stream(channel, args):
    """Audio in 40 ms chunks as int16; each frame is written as it arrives."""
    samples, rate = read_wav(args.audio)
    chunk = max(1, rate * args.chunk_ms // 1000)

    def requests():
        yield lipsync_pb2.StreamRequest(config=lipsync_pb2.StreamConfig(
            model_id=args.model, format=lipsync_pb2.StreamConfig.FORMAT_JPEG,
            encoding=lipsync_pb2.StreamConfig.ENCODING_S16LE, sample_rate=rate))
        for start in range(0, len(samples), chunk):
            yield lipsync_pb2.StreamRequest(audio=samples[start:start + chunk].tobytes())
        yield lipsync_pb2.StreamRequest(end=True)

    stub = lipsync_pb2_grpc.LipSyncStub(channel)
    count = 0
    for response in stub.Stream(requests(), timeout=args.timeout):
        if response.index != count:
            sys.exit(f"frame {response.index} arrived where {count} was due")
        write_frames(args.output, response.index, [response.frame])
        count += 1
    print(f"{count} frames ({response.width}x{response.height}) -> {args.output}")


def cmd_batch(channel, args):
    """The old API: one InferBatchComposite per piece of audio (at most --seconds long); each
    piece is a clip of its own (its edges are padded), as the old server's clients sent them."""
    samples, rate = read_wav(args.audio)
    if rate != 16000:
        sys.exit(f"{args.audio}: batch needs 16 kHz audio (sox {args.audio} -r 16000 out.wav)")
    floats = array.array("f", (s / 32768.0 for s in samples))
    if sys.byteorder == "big":
        floats.byteswap()
    stub = monolithic_pb2_grpc.MonolithicServiceStub(channel)
    piece = int(args.seconds * 16000)
    index = 0
    for start in range(0, len(floats), piece):
        audio = floats[start:start + piece]
        frames = clip_frames(len(audio))
        if len(audio) < 16000 // 25 * 2:  # too short to make a frame: the rest is dropped
            break
        reply = stub.InferBatchComposite(monolithic_pb2.CompositeBatchRequest(
            model_id=args.model, raw_audio=audio.tobytes(), batch_size=frames,
            start_frame_idx=index, sample_rate=16000), timeout=args.timeout)
        write_frames(args.output, index, reply.composited_frames)
        print(f"frames {index}..{index + frames - 1}: inference {reply.inference_time_ms:.0f} ms,"
              f" total {reply.total_time_ms:.0f} ms")
        index += frames
    print(f"{index} frames -> {args.output}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", default="127.0.0.1:50051", help="server host:port")
    p.add_argument("--timeout", type=float, default=600, help="deadline per call, seconds")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list the server's models")
    for name in ("stream", "batch"):
        s = sub.add_parser(name, help=f"{name} a WAV file, write JPEG frames")
        s.add_argument("--model", default="demo")
        s.add_argument("--audio", required=True)
        s.add_argument("-o", "--output", required=True, help="folder for the frames")
        if name == "stream":
            s.add_argument("--chunk-ms", type=int, default=40)
        else:
            s.add_argument("--seconds", type=float, default=8, help="audio per request (<= 10)")
    args = p.parse_args()
    # An InferBatchComposite reply holds every frame of its request (8 s of 720p JPEGs: ~10 MB),
    # over gRPC's default 4 MB limit.
    options = [("grpc.max_receive_message_length", 256 << 20)]
    with grpc.insecure_channel(args.target, options=options) as channel:
        try:
            {"models": cmd_models, "stream": cmd_stream, "batch": cmd_batch}[args.command](
                channel, args)
        except grpc.RpcError as e:
            sys.exit(f"{args.target}: {e.code().name}: {e.details()}")


if __name__ == "__main__":
    main()
