#!/usr/bin/env bash
# The WHEP example page as its README serves it (python3 -m http.server, another origin than
# the server's, allowed by server.cors_origins), in headless Chromium against a real
# `lipsync serve` (demo model): test.sh LIPSYNC_BINARY SPEECH_WAV. Like tests/browser/run.sh,
# it runs in a private network namespace with only loopback when the system allows it.
set -euo pipefail
if [[ -z ${WHEP_JS_NETNS:-} ]] && unshare -n true 2>/dev/null; then
  export WHEP_JS_NETNS=1
  exec unshare -n bash -c 'ip link set lo up && exec "$@"' _ "$0" "$@"
fi
lipsync=$1 speech=$2
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
page='' pid=''  # the page's server, lipsync's
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null
  [[ -n $page ]] && kill "$page" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
[[ -d $here/../../tests/browser/node_modules/playwright-core ]] ||
  { echo "test.sh: playwright-core is missing; run scripts/bootstrap --tests" >&2; exit 1; }

# wait_port FILE SED_EXPR: the port a server printed into FILE.
wait_port() {
  local port=
  for _ in $(seq 600); do
    port=$(sed -n "$2" "$1")
    [[ -n $port ]] && { echo "$port"; return; }
    sleep 0.1
  done
  cat "$1" >&2
  return 1
}

(cd "$here" && exec "$py" -u -m http.server --bind 127.0.0.1 0) >"$work/page.out" 2>&1 &
page=$!
page_port=$(wait_port "$work/page.out" 's/^Serving HTTP on .* port \([0-9]*\) .*/\1/p')

printf 'server:\n  cors_origins: http://127.0.0.1:%s\n' "$page_port" >"$work/config.yaml"
: >"$work/serve.out"  # there before the loop below reads it
LIPSYNC_CACHE_DIR="$work/cache" "$lipsync" serve --config "$work/config.yaml" \
  --grpc 127.0.0.1:0 --http 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
port=$(wait_port "$work/serve.out" 's/^{.*"http_port":\([0-9]*\).*/\1/p') ||
  { cat "$work/serve.err" >&2; exit 1; }

node "$here/browser_check.mjs" \
  "http://127.0.0.1:$page_port/index.html?server=http://127.0.0.1:$port" "$speech"

kill -TERM "$pid"
wait "$pid"
pid=
echo "examples.whep_js: ok"
