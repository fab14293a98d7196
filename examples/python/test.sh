#!/usr/bin/env bash
# The Python example against a real `lipsync serve` (demo models) on loopback (CTest
# examples.python): stubs made with grpc_tools, then `models`, `stream` and `batch`.
set -euo pipefail
lipsync=$1 speech=$2
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3  # Debian's, where python3-grpcio lives (not a pyenv or venv one)
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cp "$here/lipsync_client.py" "$work/"
mkdir "$work/gen"
(cd "$here/../../proto" && "$py" -m grpc_tools.protoc -I . --python_out="$work/gen" \
   --grpc_python_out="$work/gen" lipsync/v1/lipsync.proto monolithic.proto)

: >"$work/serve.out"  # there before the loop below reads it
LIPSYNC_CACHE_DIR="$work/cache" "$lipsync" serve --grpc 127.0.0.1:0 --http off >"$work/serve.out" 2>&1 &
pid=$!
port=
for _ in $(seq 600); do
  port=$(sed -n 's/^{"grpc_port":\([0-9]*\).*/\1/p' "$work/serve.out")
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { cat "$work/serve.out" >&2; exit 1; }
client=("$py" "$work/lipsync_client.py" --target "127.0.0.1:$port")

"${client[@]}" models | tee "$work/models.txt"
grep -q "^demo " "$work/models.txt"

# Stream: the whole clip, 188 frames (as `lipsync client` gets), every one a JPEG.
"${client[@]}" stream --model demo --audio "$speech" -o "$work/stream" | tee "$work/stream.txt"
grep -q "^188 frames (1280x720)" "$work/stream.txt"
[[ $(ls "$work/stream" | wc -l) == 188 ]]
for f in "$work/stream/00000.jpg" "$work/stream/00187.jpg"; do
  [[ $(head -c 2 "$f" | od -An -tx1 | tr -d ' ') == ffd8 ]] || { echo "$f: not a JPEG" >&2; exit 1; }
done
# 44.1 kHz speech is resampled by the server: the same number of frames.
sox "$speech" -r 44100 "$work/speech44.wav"
"${client[@]}" stream --model demo --audio "$work/speech44.wav" -o "$work/stream44" | grep -q "^188 frames"

# The old API, 8 s per request: one request for this 7.6 s clip, 188 frames.
"${client[@]}" batch --model demo --audio "$speech" -o "$work/batch" | tee "$work/batch.txt"
grep -q "^188 frames" "$work/batch.txt"
# ... 2 s per request: four requests, each a clip of its own.
"${client[@]}" batch --model demo --audio "$speech" --seconds 2 -o "$work/batch2" | tail -1 | grep -q " frames"
[[ $(ls "$work/batch2" | wc -l) -gt 150 ]]

# A server error reaches the user as its status and message.
if "${client[@]}" stream --model ghost --audio "$speech" -o "$work/x" 2>"$work/err"; then
  echo "an unknown model succeeded" >&2; exit 1
fi
grep -q "NOT_FOUND" "$work/err" && grep -q "ghost" "$work/err" || { cat "$work/err" >&2; exit 1; }

kill -TERM "$pid"
wait "$pid"
pid=
echo "examples.python: ok"
