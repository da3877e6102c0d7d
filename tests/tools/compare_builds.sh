#!/usr/bin/env bash
# Byte-for-byte comparison of two builds' outputs (tests/tools/output_hashes.sh): BASE_REV (default:
# origin/main, else HEAD) is built in a temporary git worktree, the work tree as it is, and every
# output's sha256 must agree. Exit 1 with the differing lines otherwise.
#
#   tests/tools/compare_builds.sh [BASE_REV]
#   BASE_BIN=/path/to/old/quantmix tests/tools/compare_builds.sh     (an already built base binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
BASE="${1:-$(git rev-parse -q --verify origin/main || git rev-parse HEAD)}"
CACHE="${QUANTMIX_CACHE:-$HOME/.cache/quantmix}"
W="$CACHE/compare-builds"
mkdir -p "$W"
BASE_BIN="${BASE_BIN:-}"
if [ -z "$BASE_BIN" ]; then
  # The base build keeps its own target directory (reused between runs).
  if [ ! -e "$W/base/.git" ]; then
    git worktree add --detach "$W/base" "$BASE" > /dev/null
  else
    git -C "$W/base" checkout -q --detach "$BASE"
  fi
  (cd "$W/base" && CARGO_TARGET_DIR="$W/target-base" cargo build --release -q)
  BASE_BIN="$W/target-base/release/quantmix"
  BASE="$(git rev-parse --short "$BASE")"
else
  BASE="$BASE_BIN"
fi
cargo build --release -q
# Both runs write to the same folder (paths are part of some outputs: the
# imatrix file named in a GGUF's metadata); the base binary runs the work
# tree's fixtures and recipes (the script's own copy).
rm -rf "$W/out"
tests/tools/output_hashes.sh "$BASE_BIN" "$W/out" > "$W/base.txt"
rm -rf "$W/out"
tests/tools/output_hashes.sh "$ROOT/target/release/quantmix" "$W/out" > "$W/new.txt"
n=$(wc -l < "$W/new.txt")
if diff "$W/base.txt" "$W/new.txt"; then
  echo "compare_builds: $n outputs byte-identical between $BASE and the work tree"
else
  echo "compare_builds: outputs differ between $BASE and the work tree" >&2
  exit 1
fi
