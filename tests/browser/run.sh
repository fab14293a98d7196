#!/usr/bin/env bash
# Runs browser tests: run.sh LIPSYNC_BINARY SPEECH_WAV [TEST_FILE] (default: webrtc.test.mjs).
# Server and browser share a private network namespace with only loopback (unshare -n) when the
# system allows it, so no packet leaves the machine; otherwise they run as they are (everything
# still binds to 127.0.0.1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export LIPSYNC_BINARY="$1" LIPSYNC_SPEECH="$2"
if [[ ! -d "$here/node_modules/playwright-core" ]]; then
  echo "run.sh: playwright-core is missing; run scripts/bootstrap --tests" >&2
  exit 1
fi
cmd=(node --test --test-reporter=spec "$here/${3:-webrtc.test.mjs}")
if unshare -n true 2>/dev/null; then
  cmd=(unshare -n bash -c 'ip link set lo up && exec "$@"' _ "${cmd[@]}")
fi
# Up to three runs, each whole and on its own: the file passes when one run passes every test.
# On a 2-core machine the browser shares the cores with the server's encoder and its own decoder,
# and its timing (its A/V sync, its frame callbacks) then misses a bound now and then: on an AMD
# EPYC 2-core machine one run in four or five failed, with the code before and after a change
# alike. A real break fails all three.
for attempt in 1 2 3; do
  status=0
  "${cmd[@]}" || status=$?
  ((status == 0)) && exit 0
  echo "run.sh: run $attempt of 3 failed (exit $status)" >&2
done
exit "$status"
