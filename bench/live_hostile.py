#!/usr/bin/env python3
"""A live session under hostile and heavy speech, with real-size models: what breaks, what holds.

    bench/live_hostile.py [--binary PATH] [--width W] [--runs N]

Writes real-size synthetic models (`lipsync models synth --width W`, default 1: the real cost)
and a 1280x720 demo avatar into a temporary folder, starts `lipsync serve` on loopback with a
token, and then, N times (default 2), on one HTTP session:
  1. an agent's WebSocket streams 3 s of 24 kHz s16le speech in 1 KB messages, faster than real
     time, and interrupts 1.5 s after playback_started: the time from sending the interrupt to
     its playback_finished at this client, and what that event says was heard;
  2. a second turn of 1 s plays to its end;
  3. a third is cut off by the client closing the connection mid-utterance;
  4. a 2 MB message on a new socket, whose close the client never answers: the close code, and
     whether the session takes the next upload at once;
  5. a 46 MB raw upload (60 s of 192 kHz f32) while /healthz is timed every 50 ms: the
     upload's answer and how long it took (backpressure: the session holds 30 s), and /healthz
     latency during it (speech is decoded off the HTTP I/O thread);
  6. a 2-minute upload cut by DELETE of its session: its answer (410, with the samples taken).
It prints one JSON object per run and the server's resident memory after start-up and after each
run (flat after the first run: nothing leaks).
"""
import argparse
import base64
import json
import math
import os
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "hostile"


class Server:
    def __init__(self, binary, folder):
        config = os.path.join(folder, "serve.yaml")
        with open(config, "w") as f:
            f.write(f"server:\n  api_token: {TOKEN}\n"
                    "avatars:\n  big: {avatar: avatar, models: models, preload: true}\n")
        self.process = subprocess.Popen(
            [binary, "serve", "--config", config, "--http", "127.0.0.1:0", "--grpc",
             "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = json.loads(self.process.stdout.readline())["http_port"]
        for _ in range(1200):
            try:
                if self.call("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not get ready")

    def call(self, method, path, body=None, content_type="application/json", timeout=300):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                         method=method)
        request.add_header("Authorization", "Bearer " + TOKEN)
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def rss_mb(self):
        with open(f"/proc/{self.process.pid}/statm") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)

    def stop(self):
        self.process.send_signal(signal.SIGINT)  # at once (SIGTERM would drain)
        self.process.wait()


class WebSocket:
    """A bare RFC 6455 client: masked frames out, text messages in (on a thread)."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert b" 101 " in head, head
        self.pending = b""
        self.messages = []
        self.close_code = None
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, data, text):
        if text:
            data = data.encode()
        n = len(data)
        head = bytes([0x80 | (1 if text else 2)])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        try:
            self.sock.sendall(head + b"\0\0\0\0" + data)  # a zero mask leaves the data as it is
            return True
        except OSError:
            return False

    def wait(self, match, timeout=60):
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            with self.lock:
                for at, m in self.messages:
                    if match(m):
                        return at, m
            time.sleep(0.002)
        return None, None

    def close_abruptly(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _take(self, n):
        while len(self.pending) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.pending += data
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def _read(self):
        try:
            while True:
                b0, b1 = self._take(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._take(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._take(8))[0]
                payload = self._take(n)
                if b0 & 0xF == 8:  # a close: recorded, never answered
                    self.close_code = struct.unpack(">H", payload[:2])[0] if n >= 2 else 1005
                    return
                if b0 & 0xF == 1:
                    with self.lock:
                        self.messages.append((time.monotonic(), json.loads(payload)))
        except (EOFError, OSError):
            if self.close_code is None:
                self.close_code = 0


def tone(seconds, rate):
    return b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 200 * i / rate)))
                    for i in range(int(seconds * rate)))


def run(server):
    out = {}
    session = json.loads(server.call("POST", "/v1/sessions", b"{}")[1])["id"]
    base = f"/v1/sessions/{session}"
    finished = lambda u: lambda m: m.get("type") == "playback_finished" and m["utterance"] == u
    # 1, 2, 3: an agent's turns.
    ws = WebSocket(server.port, base + "/ws")
    pcm = tone(3.0, 24000)
    ws.send('{"type":"utterance","sample_rate":24000,"encoding":"s16le"}', True)
    for at in range(0, len(pcm), 1024):
        ws.send(pcm[at:at + 1024], False)
    ws.send('{"type":"segment_end"}', True)
    started, _ = ws.wait(lambda m: m.get("type") == "playback_started")
    out["turn_1_started"] = started is not None
    time.sleep(1.5)
    sent = time.monotonic()
    ws.send('{"type":"interrupt"}', True)
    at, event = ws.wait(finished(0))
    out["interrupt_to_playback_finished_ms"] = round((at - sent) * 1000, 1) if at else None
    out["turn_1_finished"] = event
    ws.send('{"type":"utterance"}', True)
    ws.send(tone(1.0, 16000), False)
    ws.send('{"type":"segment_end"}', True)
    out["turn_2_finished"] = ws.wait(finished(1))[1]
    ws.send('{"type":"utterance"}', True)
    ws.send(tone(0.5, 16000), False)
    ws.close_abruptly()
    time.sleep(0.5)
    # 4: a message over the limit; the close is never answered.
    big = WebSocket(server.port, base + "/ws")
    big.send('{"type":"utterance"}', True)
    big.send(b"\0" * (2 << 20), False)
    for _ in range(200):
        if big.close_code is not None:
            break
        time.sleep(0.05)
    out["too_big_close_code"] = big.close_code
    out["upload_after_too_big"] = server.call("POST", base + "/speech", tone(0.2, 16000),
                                              "audio/s16le;rate=16000")[0]
    # 5: 46 MB of raw 192 kHz f32 while /healthz is timed.
    latencies = []

    def probe():
        for _ in range(40):
            t = time.monotonic()
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10).read()
            latencies.append((time.monotonic() - t) * 1000)
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    t = time.monotonic()
    status, body = server.call("POST", base + "/speech", struct.pack("<f", 0.1) * (192000 * 60),
                               "audio/f32le;rate=192000")
    out["upload_192khz_60s"] = {"status": status, "seconds": round(time.monotonic() - t, 1),
                                "answer": json.loads(body)}
    prober.join()
    latencies.sort()
    out["healthz_ms_during_upload"] = {"p50": round(latencies[len(latencies) // 2], 1),
                                       "max": round(latencies[-1], 1)}
    server.call("POST", base + "/interrupt", b"")
    # 6: an upload cut by DELETE.
    cut = {}

    def upload():
        cut["answer"] = server.call("POST", base + "/speech",
                                    struct.pack("<f", 0.1) * (16000 * 120),
                                    "audio/f32le;rate=16000")

    uploader = threading.Thread(target=upload)
    uploader.start()
    time.sleep(2)
    out["delete"] = server.call("DELETE", base)[0]
    uploader.join()
    out["upload_cut_by_delete"] = {"status": cut["answer"][0],
                                   "answer": json.loads(cut["answer"][1])}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "build/release/lipsync"))
    parser.add_argument("--width", default="1")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([args.binary, "models", "synth", "-o", os.path.join(folder, "models"),
                        "--width", args.width], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([args.binary, "avatar", "demo", "-o", os.path.join(folder, "avatar"),
                        "--frames", "20"], check=True, stdout=subprocess.DEVNULL)
        server = Server(args.binary, folder)
        try:
            print(json.dumps({"rss_mb_ready": server.rss_mb()}))
            for _ in range(args.runs):
                result = run(server)
                result["rss_mb_after"] = server.rss_mb()
                print(json.dumps(result))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
