#!/usr/bin/env bash
# CTest readme.quickstart: the README's quick start block, taken from README.md and run as written
# from the clone's root, for a user whose home is a new empty folder and whose PATH is the
# system's: scripts/install builds and installs into ~/.local, the demo video lands in ~, and a
# new shell finds the installed lipsync, which runs without the clone's build folder.
# Usage: quickstart_test.sh SOURCE_DIR
set -euo pipefail
root=$(cd "$1" && pwd)
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT

block=$(awk '/^<!-- test: quickstart -->$/ { marked = 1; next }
  marked && /^```sh$/ { inside = 1; next } inside && /^```$/ { exit } inside { print }' \
  "$root/README.md")
[[ $block == *scripts/install* ]] || { echo "no quick start block in README.md" >&2; exit 1; }

user=(env -i HOME="$home" PATH=/usr/local/bin:/usr/bin:/bin TERM=dumb)
(cd "$root" && "${user[@]}" bash -e -c "$block") >"$home/out.txt" 2>"$home/err.txt" ||
  { cat "$home/err.txt" >&2; echo "the quick start failed" >&2; exit 1; }

# The render's summary: the bundled 7.6 s clip is 188 frames.
grep -q '"frames": *188' "$home/out.txt" || { cat "$home/out.txt" "$home/err.txt" >&2; exit 1; }
[[ $(head -c 8 "$home/demo.mp4" | tail -c 4) == ftyp ]] || { echo "~/demo.mp4 is not an MP4" >&2; exit 1; }
[[ -x $home/.local/bin/lipsync && -f $home/.local/lib/lipsync/libonnxruntime.so.1 ]]
[[ -f $home/.local/share/lipsync/proto/lipsync/v1/lipsync.proto ]]

# A new shell finds it, and it runs on its own ONNX Runtime.
found=$("${user[@]}" bash -ic 'command -v lipsync' 2>/dev/null </dev/null)
[[ $found == "$home/.local/bin/lipsync" ]] || { echo "a new shell finds '$found'" >&2; exit 1; }
ort=$(ldd "$home/.local/bin/lipsync" | sed -n 's/^[[:space:]]*libonnxruntime.so.1 => \([^ ]*\) .*/\1/p')
[[ $(realpath "$ort") == "$home/.local/lib/lipsync/libonnxruntime.so.1" ]] ||
  { echo "the installed lipsync loads ONNX Runtime from '$ort'" >&2; exit 1; }
"${user[@]}" bash -ic 'lipsync --version' </dev/null 2>/dev/null | grep -q '^lipsync '
echo "readme.quickstart: ok"
