#!/usr/bin/env bash
# The embedding example end to end (CTest examples.embed): demo models and avatar written by the
# lipsync tool, 2 s of the bundled speech, render_clip -> an MP4 with 49 frames.
set -euo pipefail
lipsync=$1 render_clip=$2 speech=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$lipsync" models demo -o "$work/models" >/dev/null
"$lipsync" avatar demo -o "$work/avatar" --frames 10 --width 320 --height 240 >/dev/null
sox "$speech" "$work/speech.wav" trim 0 2
out=$("$render_clip" "$work/models" "$work/avatar" "$work/speech.wav" "$work/clip.mp4")
echo "$out"
[[ $out == "49 frames in "* ]] || { echo "expected 49 frames" >&2; exit 1; }
# An MP4 (ISO base media: 'ftyp' at byte 4) of some size.
[[ $(head -c 8 "$work/clip.mp4" | tail -c 4) == ftyp ]] || { echo "not an MP4" >&2; exit 1; }
(( $(stat -c %s "$work/clip.mp4") > 10000 )) || { echo "MP4 too small" >&2; exit 1; }
# Bad input is an error with the library's message, exit 1.
if "$render_clip" "$work/nothing" "$work/avatar" "$work/speech.wav" "$work/x.mp4" 2>"$work/err"; then
  echo "a missing models folder succeeded" >&2; exit 1
fi
grep -q "nothing" "$work/err" || { cat "$work/err" >&2; exit 1; }
[[ ! -e $work/x.mp4 ]]
echo "examples.embed: ok"
