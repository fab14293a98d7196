#!/usr/bin/env python3
"""Live sessions over capacity: how many speaking frames each one shows on its tick.

    bench/live_overload.py --models DIR [--avatar DIR] [--seconds S] [--skip-late true|false]
                           [--scenario two|burst] [--binary PATH]

Starts `lipsync serve` on loopback with the models (model id "m", preloaded) and then:
  two    two gRPC live sessions speaking at once (`lipsync loadtest --live 2`);
  burst  one live session speaking (`lipsync loadtest --live 1`) beside an HTTP session that,
         once the first has begun to speak, gets 3 s of speech uploaded at once every 6 s (a TTS
         answering in bursts).
It polls GET /v1/sessions every 0.5 s and prints, per session, the speaking frames and how many
of them were late (their picture was not ready on the tick), and the on-time fraction. With
`--skip-late false` the scheduler runs every frame however late (the behaviour before
scheduler.skip_late), so both can be measured in one run on one machine.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def post(port, path, body, content_type):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST")
    request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True)
    parser.add_argument("--avatar", help="default: the demo avatar (lipsync avatar demo)")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--skip-late", default="true", choices=["true", "false"])
    parser.add_argument("--scenario", default="two", choices=["two", "burst"])
    parser.add_argument("--binary", default=os.path.join(ROOT, "build/release/lipsync"))
    parser.add_argument("--yaml", default="", help="more config file text, e.g. 'infer:\\n  "
                        "parallel_runs: 2\\n'")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="lipsync-overload-")
    avatar = args.avatar
    if not avatar:
        avatar = os.path.join(work, "avatar")
        subprocess.run([args.binary, "avatar", "demo", "-o", avatar], check=True,
                       capture_output=True)
    config = os.path.join(work, "serve.yaml")
    with open(config, "w") as f:
        f.write(f"avatars:\n  m: {{avatar: {avatar}, models: {args.models}, preload: true}}\n"
                f"scheduler:\n  skip_late: {args.skip_late}\n" + args.yaml.replace("\\n", "\n"))
    log = open(os.path.join(work, "serve.log"), "w")
    server = subprocess.Popen([args.binary, "serve", "--config", config, "--http", "127.0.0.1:0",
                               "--grpc", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=log,
                              text=True)
    try:
        ports = json.loads(server.stdout.readline())
        http_port, grpc_port = ports["http_port"], ports["grpc_port"]
        sessions = {}  # id -> the last info seen
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                for s in get(http_port, "/v1/sessions")["sessions"]:
                    sessions[s["id"]] = s
                stop.wait(0.5)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        burster = None
        if args.scenario == "burst":
            bursty = post(http_port, "/v1/sessions", b'{"model": "m"}', "application/json")["id"]
            burst_wav = os.path.join(work, "burst.wav")  # 3 s of the bundled clip
            subprocess.run(["sox", os.path.join(ROOT, "assets/demo_speech.wav"), burst_wav,
                            "trim", "0.5", "3"], check=True)
            speech = open(burst_wav, "rb").read()

            def bursts():
                # The bursts begin once the lone session has begun to speak.
                while not stop.is_set() and not any(
                        s["origin"] == "grpc" and s.get("speech_frames", 0) > 0
                        for s in list(sessions.values())):
                    stop.wait(0.1)
                while not stop.is_set():
                    try:
                        post(http_port, f"/v1/sessions/{bursty}/speech", speech, "audio/wav")
                    except OSError:
                        pass
                    stop.wait(6)

            burster = threading.Thread(target=bursts, daemon=True)
            burster.start()
        live = "2" if args.scenario == "two" else "1"
        run = subprocess.run([args.binary, "loadtest", "--target", f"127.0.0.1:{grpc_port}",
                              "--model", "m", "--live", live, "--seconds", str(args.seconds)],
                             capture_output=True, text=True)
        stop.set()
        poller.join()
        report = []
        for s in sessions.values():
            frames, late = s.get("speech_frames", 0), s.get("speech_late_frames", 0)
            report.append({"id": s["id"], "origin": s["origin"], "frames": s["frames"],
                           "late_frames": s["late_frames"], "speech_frames": frames,
                           "speech_late_frames": late,
                           "speech_on_time": round(1 - late / frames, 4) if frames else None})
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics").read().decode()
        skipped = [line for line in metrics.splitlines()
                   if line.startswith("lipsync_frames_skipped_total{")]
        # Where the generator's time went: batch sizes and stage times (sums and counts).
        stages = [line for line in metrics.splitlines()
                  if line.startswith(("lipsync_batch_size_sum", "lipsync_batch_size_count",
                                      "lipsync_stage_seconds_sum", "lipsync_stage_seconds_count",
                                      "lipsync_frames_total"))]
        print(json.dumps({"scenario": args.scenario, "skip_late": args.skip_late == "true",
                          "seconds": args.seconds, "loadtest_exit": run.returncode,
                          "sessions": report, "skipped": skipped,
                          "stages": stages}, indent=1))
    finally:
        server.send_signal(signal.SIGINT)  # at once (SIGTERM would drain)
        server.wait(timeout=30)
        log.close()
        if server.returncode not in (0, -15):  # keep the server's log to read
            print(f"the server exited with {server.returncode}: see {log.name}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
