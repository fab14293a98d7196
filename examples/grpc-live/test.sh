#!/usr/bin/env bash
# The gRPC Live example against a real `lipsync serve` (demo model) on loopback:
# test.sh LIPSYNC_BINARY SPEECH_WAV. Stubs made with grpc_tools; checks the frames it counted
# against the session's clock (25 a second), its events, its pictures and its sound.
set -euo pipefail
lipsync=$1 speech=$2
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3  # Debian's, where python3-grpcio lives (not a pyenv or venv one)
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cp "$here/live_client.py" "$work/"
mkdir "$work/gen"
(cd "$here/../../proto" && "$py" -m grpc_tools.protoc -I . --python_out="$work/gen" \
   --grpc_python_out="$work/gen" lipsync/v1/lipsync.proto)

: >"$work/serve.out"  # there before the loop below reads it
LIPSYNC_CACHE_DIR="$work/cache" "$lipsync" serve --grpc 127.0.0.1:0 --http off \
  >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
port=
for _ in $(seq 600); do
  port=$(sed -n 's/^{"grpc_port":\([0-9]*\).*/\1/p' "$work/serve.out")
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { cat "$work/serve.err" >&2; exit 1; }

"$py" "$work/live_client.py" --target "127.0.0.1:$port" --speech "$speech" \
  --interrupt-after 3 -o "$work/out" | tee "$work/out.txt"

"$py" - "$work/out.txt" "$work/out" <<'CHECK'
import array, json, re, sys, wave
text, out = open(sys.argv[1]).read(), sys.argv[2]
events = [json.loads(l[len("event "):]) for l in text.splitlines() if l.startswith("event ")]
m = re.search(r"^(\d+) frames, ([\d.]+) s from the first to the last \(([\d.]+) a second\): "
              r"(\d+) idle, (\d+) speaking, (\d+) fading; (\d+) late$", text, re.M)
assert m, text
frames, wall, rate = int(m[1]), float(m[2]), float(m[3])
idle, speaking, fading, late = (int(m[i]) for i in range(4, 8))
# The session's clock: a frame every 40 ms of wall time.
assert abs(rate - 25) < 2.5, rate
# The events: the utterance started, was cut after 3 s of speaking frames, the avatar faded back
# to idle, and the session ended when the call half-closed.
# An underrun (a busy machine: the speech came in later than its frames were due) may come
# between them; its silence is not counted in the position heard.
types = [e["type"] for e in events if e["type"] != "underrun"]
assert types == ["utterance_queued", "state", "playback_started", "playback_finished", "state",
                 "state", "session_ended"], types
assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events
started = next(e for e in events if e["type"] == "playback_started")
finished = next(e for e in events if e["type"] == "playback_finished")
inserted_s = sum(e["ms"] for e in events if e["type"] == "underrun") / 1000
assert finished["interrupted"] and events[-1]["reason"] == "closed", events
# Every speaking frame was heard: the position the interrupt reports, with the silence inserted,
# is the frames the client saw speaking (75 when the interrupt got there on the next tick; a
# busy machine may take one more).
assert 75 <= speaking <= 78 and \
    round((finished["playback_position_s"] + inserted_s) * 25) == speaking, (speaking, finished)
assert fading >= 1 and idle >= 2 and late <= frames // 10, m[0]
# Pictures: one a second, JPEGs. Sound: every frame's 640 samples, silent before the speech
# and loud while it plays.
with open(f"{out}/00000.jpg", "rb") as f:
    assert f.read(2) == b"\xff\xd8"
with wave.open(f"{out}/session.wav") as w:
    assert w.getnframes() == frames * 640, (w.getnframes(), frames)
    samples = array.array("h", w.readframes(w.getnframes()))
first = started["pts_ms"] // 40 * 640
assert max(map(abs, samples[:first])) == 0
assert max(map(abs, samples[first:first + speaking * 640])) > 5000
print(f"frames: ok ({frames} at {rate} a second, {speaking} speaking)")
CHECK

kill -TERM "$pid"
wait "$pid"
pid=
echo "examples.grpc_live: ok"
