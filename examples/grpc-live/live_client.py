#!/usr/bin/env python3
"""A gRPC client of a live avatar session: lipsync.v1.LipSync/Live.

Make the stubs once (into gen/ beside this file; from the repository root):
    mkdir -p examples/grpc-live/gen
    python3 -m grpc_tools.protoc -I proto --python_out=examples/grpc-live/gen \
        --grpc_python_out=examples/grpc-live/gen lipsync/v1/lipsync.proto
Then, with `lipsync serve` running (gRPC on 127.0.0.1:50051):
    python3 examples/grpc-live/live_client.py --speech assets/demo_speech.wav -o live/

The call is the session: it opens one (idle: the avatar's template frames, 25 a second), sends
the speech as one utterance, interrupts it after --interrupt-after seconds of speaking (if it is
that long), waits until the avatar is idle again and half-closes, which ends the session. The
server sends one frame per 40 ms tick the whole time, each with its picture (JPEG) and its 640
audio samples. Written to the output folder: one picture a second (INDEX.jpg) and the session's
sound (session.wav: every frame's samples in order, what a player plays with the pictures).
"""
import argparse
import os
import queue
import sys
import time
import wave

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402

from lipsync.v1 import lipsync_pb2, lipsync_pb2_grpc  # noqa: E402

LiveFrame = lipsync_pb2.LiveFrame
StreamConfig = lipsync_pb2.StreamConfig


def read_wav(path):
    """(16-bit PCM bytes, sample rate) of a mono WAV."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            sys.exit(f"{path}: expected 16-bit PCM mono")
        return w.readframes(w.getnframes()), w.getframerate()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", default="127.0.0.1:50051", help="server host:port")
    p.add_argument("--token", default="", help="server.api_token, if the server has one")
    p.add_argument("--model", default="demo")
    p.add_argument("--speech", required=True, help="16-bit PCM mono WAV, any rate")
    p.add_argument("--interrupt-after", type=float, default=3.0,
                   help="seconds of speaking frames before the interrupt")
    p.add_argument("-o", "--output", required=True, help="folder for the pictures and the sound")
    args = p.parse_args()
    pcm, rate = read_wav(args.speech)
    os.makedirs(args.output, exist_ok=True)

    # What the client says, as the call goes: the requests are taken from this queue (gRPC reads
    # the iterator on its own thread); None half-closes the call.
    requests = queue.Queue()
    requests.put(lipsync_pb2.LiveRequest(config=lipsync_pb2.LiveConfig(
        model_id=args.model, format=StreamConfig.FORMAT_JPEG,
        encoding=StreamConfig.ENCODING_S16LE, sample_rate=rate)))
    # The speech: chunks of any size make up the current utterance; segment_end completes it.
    # All of it at once is fine: the server reads on as the session has room (max_buffered_s).
    chunk = rate // 10 * 2  # 100 ms
    for at in range(0, len(pcm), chunk):
        requests.put(lipsync_pb2.LiveRequest(speech=pcm[at:at + chunk]))
    requests.put(lipsync_pb2.LiveRequest(segment_end=True))

    stub = lipsync_pb2_grpc.LipSyncStub(grpc.insecure_channel(args.target))
    metadata = [("authorization", "Bearer " + args.token)] if args.token else None
    # wait_for_ready: a server just started is waited for (until the timeout), not refused.
    call = stub.Live(iter(requests.get, None), metadata=metadata, timeout=120,
                     wait_for_ready=True)

    counts = {name: 0 for name in LiveFrame.State.keys()}  # IDLE, SPEAKING, FADING
    late = pictures = 0
    interrupted = half_closed = False
    sound = wave.open(os.path.join(args.output, "session.wav"), "wb")
    sound.setnchannels(1)
    sound.setsampwidth(2)
    sound.setframerate(16000)
    try:
        for n, frame in enumerate(call):
            if n == 0:
                start = time.monotonic()
                print(f"session {frame.session_id}: {frame.width}x{frame.height}, speech shown "
                      f"{frame.latency_ms} ms after it arrives", flush=True)
            assert frame.index == n and frame.pts_ms == 40 * n  # one frame a tick, none skipped
            state = LiveFrame.State.Name(frame.state)
            counts[state] += 1
            sound.writeframes(frame.samples)  # 640 samples, 16 kHz, s16le: silence when idle
            if frame.late:  # no picture this tick: show the last one again
                late += 1
            elif frame.index % 25 == 0:
                with open(os.path.join(args.output, f"{frame.index:05d}.jpg"), "wb") as f:
                    f.write(frame.frame)
                pictures += 1
            for e in frame.events:  # playback events of this tick (the same JSON as HTTP's)
                print("event", e.json, flush=True)
            if not interrupted and counts["SPEAKING"] >= args.interrupt_after * 25:
                requests.put(lipsync_pb2.LiveRequest(interrupt=True))  # queued speech dropped
                interrupted = True
            if counts["SPEAKING"] and frame.state == LiveFrame.IDLE and not half_closed:
                # Spoken, and idle again: half-close; the session ends once its speech has
                # played (none is left), and so does the call.
                requests.put(None)
                half_closed = True
    except grpc.RpcError as e:
        sys.exit(f"{args.target}: {e.code().name}: {e.details()}")
    finally:
        sound.close()
    wall = time.monotonic() - start
    # The session's last event has no tick to ride on: it is the call's trailing metadata.
    ended = dict(call.trailing_metadata() or ()).get("lipsync-session-ended")
    if ended:
        print("event", ended)
    frames = sum(counts.values())
    print(f"{frames} frames, {wall:.2f} s from the first to the last ({(frames - 1) / wall:.1f} "
          "a second): " + ", ".join(f"{counts[s]} {s.lower()}" for s in counts) + f"; {late} late")
    print(f"-> {args.output}: {pictures} pictures, session.wav "
          f"({frames * 640 / 16000:.2f} s)")


if __name__ == "__main__":
    main()
