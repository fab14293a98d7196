#!/usr/bin/env bash
# scripts/check-layers: the project's src/ follows the layer map, and the checker catches an
# upward arrow, a folder missing from its table and an include that names no layer.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/scripts/check-layers" --root "$root"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/core" "$tmp/src/audio" "$tmp/src/render" "$tmp/src/gadgets"
printf '#include "audio/mel.h"\n' >"$tmp/src/core/bad.h"            # core may not use audio
printf '#include "core/error.h"\n#include "mel_local.h"\n' >"$tmp/src/audio/mel.h"
printf '#include "infer/models.h"\n' >"$tmp/src/render/bad.cc"       # render may not run models
printf '#include "core/error.h"\n' >"$tmp/src/gadgets/x.h"            # no row in the table
status=0
out=$("$root/scripts/check-layers" --root "$tmp" 2>&1) || status=$?
echo "$out"
[[ $status == 1 ]] || { echo "FAIL: expected exit 1, got $status" >&2; exit 1; }
for want in 'src/core/bad.h:1: core may not include audio' \
  'src/render/bad.cc:1: render may not include infer' \
  'src/audio/mel.h:2: #include "mel_local.h" names no layer' \
  "src/gadgets/: a layer missing from scripts/check-layers' table" \
  'check-layers: 4 includes break the layer map'; do
  grep -qF "$want" <<<"$out" || { echo "FAIL: missing: $want" >&2; exit 1; }
done
echo "layers: the map holds and the checker catches all four kinds of break"
