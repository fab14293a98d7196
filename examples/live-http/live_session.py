#!/usr/bin/env python3
"""Drives a live avatar session of `lipsync serve` over its HTTP API (standard library only).

    lipsync serve    # in one terminal: HTTP on 127.0.0.1:8080, the demo model
    python3 examples/live-http/live_session.py --speech assets/demo_speech.wav    # in another

It creates a session, prints the address to watch it at in a browser, follows the session's
events (Server-Sent Events) in a thread, printing each as one line `event {JSON}`, and then:
plays the speech file to its end, says a sentence with the server's text to speech, interrupts
it after --interrupt-after seconds of playback, and deletes the session.
"""
import argparse
import json
import queue
import sys
import threading
import time
import urllib.error
import urllib.request

_print_lock = threading.Lock()


def log(*args):
    """print() from both threads, a whole line at a time."""
    with _print_lock:
        print(*args, flush=True)


class Api:
    """The session API: JSON in, JSON out; an error answer ({"error": ...}) ends the program."""

    def __init__(self, base, token):
        self.base = base.rstrip("/")
        self.token = token

    def request(self, method, path, body=None, content_type=None):
        r = urllib.request.Request(self.base + path, data=body, method=method)
        if self.token:  # server.api_token; a server without one needs none
            r.add_header("Authorization", "Bearer " + self.token)
        if content_type:
            r.add_header("Content-Type", content_type)
        return r

    def call(self, method, path, body=None, content_type=None):
        if isinstance(body, dict):
            body, content_type = json.dumps(body).encode(), "application/json"
        try:
            with urllib.request.urlopen(self.request(method, path, body, content_type),
                                        timeout=60) as reply:
                text = reply.read().decode()
        except urllib.error.HTTPError as e:
            sys.exit(f"{method} {path}: {e.code} {e.read().decode().strip()}")
        except urllib.error.URLError as e:  # no answer: is the server running?
            sys.exit(f"{self.base}: {e.reason}")
        return json.loads(text) if text.strip() else None


def follow_events(api, session, events):
    """Reads GET /v1/sessions/ID/events until the session ends; puts each event (a dict) on
    `events`, then None. The stream starts with the session's first event (seq 1) whenever it
    is opened (the server keeps the last 256 for late or reconnecting readers), so nothing is
    missed by opening it after the session was made."""
    request = api.request("GET", f"/v1/sessions/{session}/events")
    try:
        with urllib.request.urlopen(request, timeout=60) as stream:  # ": keep-alive" every 15 s
            data = []
            for raw in stream:  # the server closes the stream after session_ended
                line = raw.decode().rstrip("\r\n")
                # SSE: "id: SEQ", "event: TYPE", "data: JSON", a blank line ends the event; lines
                # starting with ":" are comments. The JSON repeats id and type: data is enough.
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and data:
                    log("event", "\n".join(data))
                    events.put(json.loads("\n".join(data)))
                    data = []
    except (OSError, ValueError) as e:
        print(f"the event stream failed: {e}", file=sys.stderr)
    finally:
        events.put(None)


def wait_for(events, type_, utterance=None, timeout=30):
    """Takes events off the queue until one of `type_` (of `utterance`) comes; returns it."""
    end = time.monotonic() + timeout
    while True:
        try:
            e = events.get(timeout=max(0.0, end - time.monotonic()))
        except queue.Empty:
            sys.exit(f"no {type_} event in {timeout} s")
        if e is None:
            sys.exit(f"the event stream ended before {type_}")
        if e["type"] == type_ and (utterance is None or e.get("utterance") == utterance):
            return e


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default="http://127.0.0.1:8080", help="the server's HTTP address")
    p.add_argument("--token", default="", help="server.api_token, if the server has one")
    p.add_argument("--model", help="model id (default: the server's only model)")
    p.add_argument("--speech", required=True, help="a speech file: WAV, FLAC, OGG or MP3")
    p.add_argument("--text", default="Hello! I am a live avatar. I say whatever text I am sent, "
                   "and I stop as soon as I am interrupted, like right now.")
    p.add_argument("--voice", default="en", help="an espeak-ng voice")
    p.add_argument("--interrupt-after", type=float, default=1.5,
                   help="seconds of the text's playback before the interrupt")
    p.add_argument("--wait-for-viewer", action="store_true",
                   help="speak once a browser watches (open the printed address)")
    args = p.parse_args()
    api = Api(args.server, args.token)

    created = api.call("POST", "/v1/sessions", {"model": args.model} if args.model else {})
    session = created["id"]
    log(f"session {session}: model {created['model']}, {created['width']}x"
        f"{created['height']}, speech shown {created['latency_ms']} ms after it arrives")
    # The server's own demo page watches a session given its id; the viewer token lets it watch
    # (WebRTC) without the API token, and nothing more.
    log(f"watch it: {api.base}/?session={session}&viewer_token={created['viewer_token']}")

    events = queue.Queue()
    follower = threading.Thread(target=follow_events, args=(api, session, events), daemon=True)
    follower.start()
    if args.wait_for_viewer:
        wait_for(events, "viewer_joined", timeout=600)

    # 1. A speech file, played to its end. The answer comes once the whole file is queued (a long
    # one is read as fast as it plays, live.max_buffered_s ahead), not once it has played: its
    # playback_finished event says that.
    with open(args.speech, "rb") as f:
        queued = api.call("POST", f"/v1/sessions/{session}/speech", f.read(),
                          "application/octet-stream")  # the server tells the format by its bytes
    log(f"speech: {queued['seconds']:.2f} s queued as utterance {queued['utterance']}")
    wait_for(events, "playback_finished", queued["utterance"], timeout=queued["seconds"] + 15)

    # 2. Text to speech (espeak-ng, on the server), interrupted while it plays.
    said = api.call("POST", f"/v1/sessions/{session}/say", {"text": args.text, "voice": args.voice})
    log(f"say: {said['seconds']:.2f} s queued as utterance {said['utterance']}")
    wait_for(events, "playback_started", said["utterance"])
    time.sleep(args.interrupt_after)
    api.call("POST", f"/v1/sessions/{session}/interrupt")
    log("interrupt sent")
    # The acknowledgement: playback_finished with interrupted true and how much of the utterance
    # was heard (what a voice agent keeps of its reply's transcript).
    heard = wait_for(events, "playback_finished", said["utterance"])
    log(f"{'interrupted' if heard['interrupted'] else 'played whole'}: heard "
        f"{heard['playback_position_s']:.2f} s of {said['seconds']:.2f} s")

    # 3. The end: DELETE ends the session, its viewers and its event stream (session_ended).
    api.call("DELETE", f"/v1/sessions/{session}")
    wait_for(events, "session_ended")
    follower.join(timeout=10)


if __name__ == "__main__":
    main()
