#!/usr/bin/env python3
"""The gateway's cost and a drain seen through it: two `lipsync serve` instances behind Debian's
nginx with the config deploy/nginx/gateway.sh writes, all on loopback.

    bench/gateway.py [--binary PATH] [--requests N] [--rounds R]

Prints one JSON object:
  requests_per_s_direct, requests_per_s_gateway
      GET /v1/sessions/ID on one keep-alive connection, N requests a round, the two ways
      alternated for R rounds (the medians of the rounds);
  sigterm_to_new_session_elsewhere_ms
      an instance that holds a session gets SIGTERM (it drains: its session goes on); new
      sessions are asked of the gateway every 5 ms: the time until one is made on the other
      instance (none may fail meanwhile: failed_creates).
"""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def wait_ready(port, path="/readyz"):
    for _ in range(600):
        try:
            if request(port, "GET", path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"port {port} never answered {path}")


def rate(port, path, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start = time.perf_counter()
    for _ in range(n):
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
    elapsed = time.perf_counter() - start
    c.close()
    return n / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "build/release/lipsync"))
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="lipsync-gateway-")
    servers = {}
    procs = []
    try:
        for name in ("alpha", "beta"):
            config = os.path.join(work, name + ".yaml")
            with open(config, "w") as f:
                f.write(f"server:\n  instance_id: {name}\n  drain_timeout_s: 30\n")
            p = subprocess.Popen([args.binary, "serve", "--config", config, "--http",
                                  "127.0.0.1:0", "--grpc", "127.0.0.1:0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs.append(p)
            servers[name] = (p, json.loads(p.stdout.readline()))
        for _, ports in servers.values():
            wait_ready(ports["http_port"])
        http_port, grpc_port = free_port(), free_port()
        instances = []
        for name, (_, ports) in servers.items():
            instances += ["--instance",
                          f"{name}=127.0.0.1:{ports['http_port']},127.0.0.1:{ports['grpc_port']}"]
        conf = subprocess.run([os.path.join(ROOT, "deploy/nginx/gateway.sh"), "--listen-http",
                               f"127.0.0.1:{http_port}", "--listen-grpc",
                               f"127.0.0.1:{grpc_port}"] + instances,
                              check=True, capture_output=True, text=True).stdout
        prefix = os.path.join(work, "nginx")
        os.makedirs(prefix)
        with open(os.path.join(work, "gateway.conf"), "w") as f:
            f.write(conf)
        procs.append(subprocess.Popen(["nginx", "-p", prefix, "-c",
                                       os.path.join(work, "gateway.conf"), "-g", "daemon off;"],
                                      stderr=subprocess.DEVNULL))
        wait_ready(http_port, "/healthz")
        # The gateway's cost: one session's GET, direct and through it, alternated.
        alpha_port = servers["alpha"][1]["http_port"]
        session = json.loads(request(alpha_port, "POST", "/v1/sessions", b"{}")[1])["id"]
        direct, gateway = [], []
        for _ in range(args.rounds):
            direct.append(rate(alpha_port, f"/v1/sessions/{session}", args.requests))
            gateway.append(rate(http_port, f"/v1/sessions/{session}", args.requests))
        # A drain: alpha holds `session`, so it stays up and drains.
        servers["alpha"][0].send_signal(signal.SIGTERM)
        sent = time.monotonic()
        failed = 0
        elsewhere_ms = None
        while time.monotonic() - sent < 10:
            status, body = request(http_port, "POST", "/v1/sessions", b"{}")
            if status != 201:
                failed += 1
            elif json.loads(body)["id"].startswith("beta."):
                elsewhere_ms = (time.monotonic() - sent) * 1000
                break
            time.sleep(0.005)
        print(json.dumps({
            "requests_per_s_direct": round(statistics.median(direct)),
            "requests_per_s_gateway": round(statistics.median(gateway)),
            "rounds": args.rounds,
            "requests_per_round": args.requests,
            "sigterm_to_new_session_elsewhere_ms": round(elsewhere_ms, 1)
            if elsewhere_ms is not None else None,
            "failed_creates": failed,
        }, indent=1))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
