#!/usr/bin/env python3
"""Live events: how soon an interrupt is acknowledged, and how close events are to their tick.

    bench/live_events.py [--interrupts N] [--binary PATH]

Starts `lipsync serve` on loopback with the built-in demo models and one HTTP session, then N
times: uploads 1.5 s of speech (raw s16le), waits until the session speaks, waits a random
0-1 s more, and interrupts it (POST .../interrupt). It reads the server's histograms from
/metrics and prints:
  lipsync_live_interrupt_ack_seconds  an interrupt reaching the session to its
                                      playback_finished being emitted (at the server);
  lipsync_live_emit_jitter_seconds    every frame's (and so every tick event's) emit time
                                      minus its tick.
A percentile is given as the histogram bucket it falls in ("<= 20 ms").
"""
import argparse
import json
import math
import os
import random
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def call(port, method, path, body=None, content_type="application/json"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def histogram(metrics, name):
    """[(upper bound, cumulative count)] of a Prometheus histogram."""
    out = []
    for line in metrics.splitlines():
        m = re.match(name + r'_bucket\{le="([^"]+)"\} (\d+)', line)
        if m:
            out.append((float(m.group(1)), int(m.group(2))))
    return out


def percentile(buckets, p):
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return "-"
    for le, count in buckets:
        if count >= math.ceil(p * total):
            return "<= %g ms" % (le * 1000) if le != math.inf else "> %g ms" % (buckets[-2][0] * 1000)
    return "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interrupts", type=int, default=100)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build/release/lipsync"))
    args = parser.parse_args()
    server = subprocess.Popen([args.binary, "serve", "--http", "127.0.0.1:0", "--grpc",
                               "127.0.0.1:0"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        port = json.loads(server.stdout.readline())["http_port"]
        for _ in range(600):
            try:
                if call(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        session = json.loads(call(port, "POST", "/v1/sessions", b"{}")[1])["id"]
        pcm = bytes(bytearray(
            b for i in range(24000)
            for b in int(12000 * math.sin(2 * math.pi * 200 * i / 16000)).to_bytes(2, "little",
                                                                                 signed=True)))
        rng = random.Random(25)
        for _ in range(args.interrupts):
            status, _ = call(port, "POST", f"/v1/sessions/{session}/speech", pcm,
                             "audio/s16le;rate=16000")
            assert status == 200, status
            for _ in range(300):
                state = json.loads(call(port, "GET", f"/v1/sessions/{session}")[1])["state"]
                if state == "speaking":
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 1.0))
            call(port, "POST", f"/v1/sessions/{session}/interrupt", b"")
            time.sleep(0.2)
        metrics = call(port, "GET", "/metrics")[1].decode()
        ack = histogram(metrics, "lipsync_live_interrupt_ack_seconds")
        jitter = histogram(metrics, "lipsync_live_emit_jitter_seconds")
        print(json.dumps({
            "interrupts_acknowledged": ack[-1][1] if ack else 0,
            "interrupt_ack_p50": percentile(ack, 0.5),
            "interrupt_ack_p99": percentile(ack, 0.99),
            "frames": jitter[-1][1] if jitter else 0,
            "emit_jitter_p50": percentile(jitter, 0.5),
            "emit_jitter_p99": percentile(jitter, 0.99),
        }, indent=1))
    finally:
        server.send_signal(signal.SIGINT)  # at once (SIGTERM would drain)
        server.wait()


if __name__ == "__main__":
    main()
