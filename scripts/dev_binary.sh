#!/usr/bin/env bash
# Build the release binary that travels to the GPU machine and check that it is the build you meant.
# The engine column of every measured row names the commit the binary was built from, so a stale
# binary silently mislabels data. Cargo can keep one: after a build of another checkout (a git
# worktree) into the same CARGO_TARGET_DIR, the package's dep-info lists that checkout's files, whose
# mtimes have not moved, and `cargo build` here reports "Finished" without compiling. This script
# drops the package's own artifacts first (dependencies stay built: ~40 s), then refuses a binary
# whose embedded commit is not the one asked for.
# Usage: scripts/dev_binary.sh DEST [COMMIT]
#   no COMMIT: build this checkout (its commit, "-dirty" if tracked files changed);
#   COMMIT: build that commit in a temporary worktree, e.g. to extend a sweep with its engine.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 DEST [COMMIT] (got $# arguments)" >&2
    exit 2
fi
DEST="$1"; COMMIT="${2:-}"
ROOT="$(git rev-parse --show-toplevel)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SRC="$ROOT"
if [ -n "$COMMIT" ]; then
    SRC="$(mktemp -d)/tree"
    git -C "$ROOT" worktree add --detach "$SRC" "$COMMIT" >/dev/null
    trap 'git -C "$ROOT" worktree remove --force "$SRC"' EXIT
fi
want="$(git -C "$SRC" rev-parse --short=10 HEAD)"
if [ -n "$(git -C "$SRC" status --porcelain --untracked-files=no)" ]; then want="$want-dirty"; fi
(cd "$SRC" && cargo clean --release -p energy-fit && cargo build --release --locked)
got="$(grep -ao 'energy-fit [0-9.]* ([0-9a-f]*\(-dirty\)\?, own CUDA engine)' "$CARGO_TARGET_DIR/release/energy-fit" | head -1)"
case "$got" in
    *"($want, own CUDA engine)") ;;
    *) echo "error: built binary says '$got', expected commit $want" >&2; exit 1 ;;
esac
mkdir -p "$(dirname "$DEST")"
cp "$CARGO_TARGET_DIR/release/energy-fit" "$DEST"
echo "$DEST: $got"
