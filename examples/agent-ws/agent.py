#!/usr/bin/env python3
"""A voice agent's side of a lipsync.cpp live session: its TTS audio into the avatar over the
session's WebSocket (GET /v1/sessions/ID/ws), the session's playback events back on it.

    lipsync serve    # in one terminal: HTTP on 127.0.0.1:8080, the demo model
    python3 examples/agent-ws/agent.py --speech assets/demo_speech.wav   # in another

The speech file stands in for the agent's text to speech (16-bit PCM mono WAV, 8 to 192 kHz:
24 kHz as many TTS voices make it is fine, the server resamples). The agent creates a session
(or joins --session), speaks a short reply (the file's first --short-s seconds) and waits until
it has played, then speaks a long one (the whole file) and barges in half way, as when the user
starts talking: the interrupt is acknowledged with a playback_finished event that says how much
of the reply the user heard. Every event is printed as one line `event {JSON}`.
Needs the `websockets` package (Debian: python3-websockets).
"""
import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import wave

import websockets


def http(server, token, method, path, body=None):
    """One call of the HTTP session API; its JSON answer (None when it has none)."""
    r = urllib.request.Request(server + path, method=method,
                               data=json.dumps(body).encode() if body is not None else None,
                               headers={"Content-Type": "application/json"})
    if token:
        r.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(r, timeout=30) as reply:
            text = reply.read()
    except urllib.error.HTTPError as e:  # its JSON body says why
        raise RuntimeError(f"{method} {path}: {e.code} {e.read().decode().strip()}") from None
    return json.loads(text) if text.strip() else None


class Events:
    """What the server sends on the socket: the session's events (and error answers), kept in
    order so that the agent can wait for one that may already have come."""

    def __init__(self):
        self.seen = []
        self.arrived = asyncio.Event()

    async def read(self, ws):
        async for message in ws:  # text only: the server sends no binary messages
            e = json.loads(message)
            print("error" if e["type"] == "error" else "event", message, flush=True)
            self.seen.append(e)
            self.arrived.set()

    def last_seq(self):
        return max((e.get("seq", 0) for e in self.seen), default=0)

    async def wait_for(self, type_, utterance=None, after=0, timeout=30):
        """The first event of `type_` (of `utterance`, numbered after `after`)."""
        async def first():
            while True:
                for e in self.seen:
                    if e["type"] == "error":  # a message of ours was refused
                        raise RuntimeError(e["message"])
                    if (e["type"] == type_ and utterance in (None, e.get("utterance")) and
                            e["seq"] > after):
                        return e
                self.arrived.clear()
                await self.arrived.wait()
        return await asyncio.wait_for(first(), timeout)


async def speak(ws, events, pcm, rate, chunk_ms):
    """One reply: an utterance of s16le PCM at `rate`, sent in chunk_ms chunks as fast as the
    socket takes them (as agent frameworks send TTS audio; the session buffers it, and TCP holds
    the agent back once live.max_buffered_s is queued). Returns its utterance number."""
    before = events.last_seq()
    await ws.send(json.dumps({"type": "utterance", "sample_rate": rate, "encoding": "s16le"}))
    step = rate * chunk_ms // 1000 * 2  # bytes per chunk
    for at in range(0, len(pcm), step):
        await ws.send(pcm[at:at + step])  # bytes: a binary message
    await ws.send(json.dumps({"type": "segment_end"}))  # the reply is complete: play it to its end
    # utterance_queued names it once all of it is in (a long reply may start playing before).
    return (await events.wait_for("utterance_queued", after=before))["utterance"]


async def run(args, session, pcm, rate):
    seconds = len(pcm) / 2 / rate
    # A browser cannot set headers on a WebSocket, so the server also takes the token as a query
    # parameter; a client that can may send `Authorization: Bearer` instead.
    url = args.server.replace("http", "ws", 1) + f"/v1/sessions/{session}/ws"
    if args.token:
        url += "?access_token=" + urllib.parse.quote(args.token)
    async with websockets.connect(url) as ws:
        events = Events()
        reader = asyncio.create_task(events.read(ws))

        # A short reply, played to its end.
        short = pcm[:int(args.short_s * rate) * 2]
        u = await speak(ws, events, short, rate, args.chunk_ms)
        await events.wait_for("playback_started", u)
        done = await events.wait_for("playback_finished", u, timeout=len(short) / 2 / rate + 15)
        print(f"reply {u}: played whole ({done['playback_position_s']:.2f} s)", flush=True)

        # A long reply, and the user barges in half way: the agent sends interrupt, and the
        # avatar stops at once; the session drops what it had queued.
        u = await speak(ws, events, pcm, rate, args.chunk_ms)
        await events.wait_for("playback_started", u)
        await asyncio.sleep(seconds / 2)
        sent = time.monotonic()
        await ws.send(json.dumps({"type": "interrupt"}))
        ack = await events.wait_for("playback_finished", u)
        ack_ms = (time.monotonic() - sent) * 1000
        if not ack["interrupted"]:
            sys.exit(f"reply {u} finished uninterrupted: {ack}")
        # What the user heard of the reply: where an agent cuts the reply's text in its history.
        print(f"reply {u}: interrupted, acknowledged in {ack_ms:.0f} ms; the user heard "
              f"{ack['playback_position_s']:.2f} s of {seconds:.2f} s", flush=True)

        if not args.session:  # ours: deleting it ends the session and closes the socket
            http(args.server, args.token, "DELETE", f"/v1/sessions/{session}")
            await events.wait_for("session_ended")
        await ws.close()
        await reader


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default="http://127.0.0.1:8080", help="the server's HTTP address")
    p.add_argument("--token", default="", help="server.api_token, if the server has one")
    p.add_argument("--session", help="a session to speak into (default: a new one, deleted "
                   "at the end)")
    p.add_argument("--speech", required=True, help="16-bit PCM mono WAV: the agent's TTS audio")
    p.add_argument("--short-s", type=float, default=2.0, help="seconds of the short reply")
    p.add_argument("--chunk-ms", type=int, default=100, help="audio per binary message")
    args = p.parse_args()
    args.server = args.server.rstrip("/")

    with wave.open(args.speech, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            sys.exit(f"{args.speech}: expected 16-bit PCM mono")
        pcm, rate = w.readframes(w.getnframes()), w.getframerate()  # little-endian, as s16le

    try:
        session = args.session
        if not session:
            created = http(args.server, args.token, "POST", "/v1/sessions", {})
            session = created["id"]
            print(f"session {session}: watch it at {args.server}/?session={session}"
                  f"&viewer_token={created['viewer_token']}", flush=True)
        asyncio.run(run(args, session, pcm, rate))
    except (OSError, RuntimeError, asyncio.TimeoutError, websockets.WebSocketException) as e:
        sys.exit(f"agent: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
