#!/usr/bin/env bash
# The WebSocket agent example against a real `lipsync serve` (demo model, an API token) on
# loopback: test.sh LIPSYNC_BINARY SPEECH_WAV. The speech goes in at 24 kHz, as a TTS voice makes
# it; checks the events the agent printed: both replies, the barge-in and its acknowledgement.
set -euo pipefail
lipsync=$1 speech=$2
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3  # Debian's, where python3-websockets lives
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

printf 'server:\n  api_token: agent-test-token\n' >"$work/config.yaml"
: >"$work/serve.out"  # there before the loop below reads it
LIPSYNC_CACHE_DIR="$work/cache" "$lipsync" serve --config "$work/config.yaml" \
  --grpc 127.0.0.1:0 --http 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
port=
for _ in $(seq 600); do
  port=$(sed -n 's/^{.*"http_port":\([0-9]*\).*/\1/p' "$work/serve.out")
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { cat "$work/serve.err" >&2; exit 1; }
sox "$speech" -r 24000 "$work/speech24k.wav"

"$py" "$here/agent.py" --server "http://127.0.0.1:$port" --token agent-test-token \
  --speech "$work/speech24k.wav" --short-s 2 | tee "$work/out.txt"

"$py" - "$work/out.txt" "$speech" <<'EOF'
import json, re, sys, wave
text = open(sys.argv[1]).read()
assert "\nerror " not in text, text
events = [json.loads(l[len("event "):]) for l in text.splitlines() if l.startswith("event ")]
with wave.open(sys.argv[2]) as w:
    speech_s = w.getnframes() / w.getframerate()

def one(type_, utterance):
    found = [e for e in events if e["type"] == type_ and e.get("utterance") == utterance]
    assert len(found) == 1, f"{type_} of utterance {utterance}: {found}"
    return found[0]

assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events
assert events[-1]["type"] == "session_ended" and events[-1]["reason"] == "deleted", events[-1]
# The short reply: 2 s (resampled from 24 kHz), played whole.
q0, s0, f0 = one("utterance_queued", 0), one("playback_started", 0), one("playback_finished", 0)
assert abs(q0["seconds_received"] - 2.0) < 0.01, q0
assert s0["seq"] < f0["seq"] and not f0["interrupted"], (s0, f0)
assert 1.9 < f0["playback_position_s"] <= 2.0, f0
# The long reply: the whole file, cut half way; the position is what played, frame by frame.
q1, s1, f1 = one("utterance_queued", 1), one("playback_started", 1), one("playback_finished", 1)
assert abs(q1["seconds_received"] - speech_s) < 0.01, q1
assert f0["seq"] < s1["seq"] < f1["seq"] and f1["interrupted"], (f0, s1, f1)
assert abs(f1["playback_position_s"] - speech_s / 2) < 0.4, (f1, speech_s)
assert f1["pts_ms"] - s1["pts_ms"] == round(f1["playback_position_s"] * 1000), (s1, f1)
assert [e["state"] for e in events if e["type"] == "state"][:4] == \
    ["speaking", "idle", "speaking", "fading"], events
ack_ms = int(re.search(r"acknowledged in (\d+) ms", text).group(1))
assert ack_ms < 500, ack_ms  # the next tick, 40 ms a tick, plus a busy machine's delays
print(f"events: ok (barge-in acknowledged in {ack_ms} ms, "
      f"{f1['playback_position_s']:.2f} s of {speech_s:.2f} s heard)")
EOF

kill -TERM "$pid"
wait "$pid"
pid=
echo "examples.agent_ws: ok"
