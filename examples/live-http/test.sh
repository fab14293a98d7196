#!/usr/bin/env bash
# The HTTP live-session example against a real `lipsync serve` (demo model) on loopback:
# test.sh LIPSYNC_BINARY SPEECH_WAV. Checks the events it printed: their order and values.
set -euo pipefail
lipsync=$1 speech=$2
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

: >"$work/serve.out"  # there before the loop below reads it
LIPSYNC_CACHE_DIR="$work/cache" "$lipsync" serve --grpc 127.0.0.1:0 --http 127.0.0.1:0 \
  >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
port=
for _ in $(seq 600); do
  port=$(sed -n 's/^{.*"http_port":\([0-9]*\).*/\1/p' "$work/serve.out")
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { cat "$work/serve.err" >&2; exit 1; }

"$py" "$here/live_session.py" --server "http://127.0.0.1:$port" --speech "$speech" \
  --interrupt-after 1.5 | tee "$work/out.txt"

# The address it printed is the server's demo page.
url=$(sed -n 's/^watch it: //p' "$work/out.txt")
[[ $url == "http://127.0.0.1:$port/?session="*"&viewer_token="* ]]
"$py" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
  "$url" >"$work/page.html"
grep -q "<title>lipsync.cpp live avatar</title>" "$work/page.html"

"$py" - "$work/out.txt" "$speech" <<'EOF'
import json, sys, wave
lines = open(sys.argv[1]).read().splitlines()
events = [json.loads(l[len("event "):]) for l in lines if l.startswith("event ")]
with wave.open(sys.argv[2]) as w:
    speech_s = w.getnframes() / w.getframerate()

def inserted_s(utterance):
    """The silence a busy machine's underruns inserted into an utterance (not in its position)."""
    return sum(e["ms"] for e in events
               if e["type"] == "underrun" and e["utterance"] == utterance) / 1000

def one(type_, utterance):
    found = [e for e in events if e["type"] == type_ and e.get("utterance") == utterance]
    assert len(found) == 1, f"{type_} of utterance {utterance}: {found}"
    return found[0]

# Every event once, numbered from 1 without a gap; session_ended is the last.
assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events
assert events[-1]["type"] == "session_ended" and events[-1]["reason"] == "deleted", events[-1]
# The file: queued whole, started, then finished uninterrupted after all of it played (an
# utterance plays whole frames: the last ~30 ms are not heard).
q0, s0, f0 = one("utterance_queued", 0), one("playback_started", 0), one("playback_finished", 0)
assert abs(q0["seconds_received"] - speech_s) < 0.01, q0
assert q0["seq"] < s0["seq"] < f0["seq"], (q0, s0, f0)
assert not f0["interrupted"] and speech_s - 0.1 < f0["playback_position_s"] <= speech_s, f0
assert abs((f0["pts_ms"] - s0["pts_ms"]) / 1000 - f0["playback_position_s"] - inserted_s(0)) \
    < 0.05, (s0, f0)
# The text: started after the file finished, interrupted after about 1.5 s of it.
q1, s1, f1 = one("utterance_queued", 1), one("playback_started", 1), one("playback_finished", 1)
assert f0["seq"] < q1["seq"] < s1["seq"] < f1["seq"], (f0, q1, s1, f1)
assert q1["seconds_received"] > 3, q1  # the sentence is long enough to be cut
assert f1["interrupted"] and 1.3 < f1["playback_position_s"] < 2.5, f1
# Exact to the millisecond; an underrun's silence is reported in whole milliseconds.
played_ms = (f1["playback_position_s"] + inserted_s(1)) * 1000
assert abs(f1["pts_ms"] - s1["pts_ms"] - round(played_ms)) <= (1 if inserted_s(1) else 0), (s1, f1)
# The state follows: speaking while each plays, fading after the interrupt.
states = [(e["state"], e["pts_ms"]) for e in events if e["type"] == "state"]
assert states[:3] == [("speaking", s0["pts_ms"]), ("idle", f0["pts_ms"]),
                      ("speaking", s1["pts_ms"])], states
assert states[3] == ("fading", f1["pts_ms"]), states
print(f"events: ok ({len(events)}; heard {f1['playback_position_s']:.2f} s of the text)")
EOF

kill -TERM "$pid"
wait "$pid"
pid=
echo "examples.live_http: ok"
