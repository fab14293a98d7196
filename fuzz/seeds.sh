#!/usr/bin/env bash
# Builds each harness's seed corpus under OUT_DIR/<harness>/: the small text seeds checked in
# under fuzz/seeds/<harness>/, files of the golden test data (read in place, only copied into
# OUT_DIR), audio converted with sox when it is installed, and the binary seeds make_seeds.py
# writes. OUT_DIR is a working copy (libFuzzer adds what it finds there); fuzz/seeds is never
# written.
#
#   fuzz/seeds.sh OUT_DIR [TESTDATA_DIR]   (default: $LIPSYNC_TESTDATA_DIR or ../shared/testdata)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
(($# >= 1 && $# <= 2)) || { echo "usage: fuzz/seeds.sh OUT_DIR [TESTDATA_DIR]" >&2; exit 2; }
out=$1
testdata=${2:-${LIPSYNC_TESTDATA_DIR:-$here/../../shared/testdata}}
[[ -d $testdata ]] || echo "seeds.sh: no test data at $testdata; only the checked-in seeds" >&2

harnesses=(audio_bytes wire_audio http_request sdp_offer torch_checkpoint model_manifest
  avatar_manifest crop_rects landmarks config_yaml grpc_requests agent_socket)
for h in "${harnesses[@]}"; do
  mkdir -p "$out/$h"
  if [[ -d $here/seeds/$h ]]; then
    cp -f "$here/seeds/$h"/* "$out/$h/"
  fi
done

# take HARNESS FILE...: copies the test data files that exist, named testdata_<name>.
take() {
  local h=$1 f
  shift
  for f in "$@"; do
    [[ -f $f ]] || continue
    cp -f "$f" "$out/$h/testdata_$(basename "$f")"
    chmod u+w "$out/$h/testdata_$(basename "$f")"  # the test data is read-only
  done
  return 0
}

take audio_bytes "$testdata"/audio/*.wav
take crop_rects "$testdata/reference/crop_rects.json"
take landmarks "$testdata"/reference/landmarks/{0,1,2,30,59}.lms
# No model.json or avatar.json in the test data today; any that appear are used, and other JSON
# of the test data seeds the JSON parsers' structure.
while IFS= read -r -d '' f; do take model_manifest "$f"; done \
  < <(find "$testdata" -name model.json -size -64k -print0 2>/dev/null)
while IFS= read -r -d '' f; do take avatar_manifest "$f"; done \
  < <(find "$testdata" -name avatar.json -size -64k -print0 2>/dev/null)
take model_manifest "$testdata/checkpoints/manifest.json"
take avatar_manifest "$testdata/reference/frame_map.json"

# The other formats and rates libsndfile reads, from the 0.3 s clip (a few KB each).
clip=$testdata/audio/short_0p3s.wav
if command -v sox >/dev/null && [[ -f $clip ]]; then
  a=$out/audio_bytes
  sox "$clip" "$a/sox.flac"
  sox "$clip" "$a/sox.ogg"
  sox "$clip" "$a/sox.aiff"
  sox "$clip" "$a/sox.au"
  sox "$clip" "$a/sox.w64"
  sox "$clip" -e floating-point -b 32 "$a/sox_float.wav"
  sox "$clip" -e floating-point -b 64 "$a/sox_double.wav"
  sox "$clip" -b 24 "$a/sox_24bit.wav"
  sox "$clip" -b 8 -e unsigned-integer "$a/sox_u8.wav"
  sox "$clip" -e u-law "$a/sox_ulaw.wav"
  sox "$clip" -e ima-adpcm "$a/sox_adpcm.wav" 2>/dev/null || true
  sox "$clip" -r 44100 -c 2 "$a/sox_44k_stereo.wav"
  sox "$clip" -r 8000 "$a/sox_8k.wav"
  sox "$clip" -r 48000 -c 6 "$a/sox_48k_6ch.flac"
  sox "$clip" -r 192000 "$a/sox_192k_2ms.wav" trim 0 0.002
  sox "$testdata/audio/speech_a_en.wav" "$a/sox_speech_0p5s.wav" trim 0 0.5
else
  echo "seeds.sh: sox missing: audio seeds are the test data's WAV files only" >&2
fi

python3 "$here/make_seeds.py" "$out" "$testdata"
