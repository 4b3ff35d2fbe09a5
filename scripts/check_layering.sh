#!/usr/bin/env bash
# The one-way dependency rule of docs/architecture.md, checked on the source text:
#   1. only src/engine/, src/measure/ and the commands that drive the GPU (ENGINE_USERS) use the
#      engine, so fitting, design and reports build and run without CUDA;
#   2. src/engine/ uses nothing above it (ABOVE): it knows nothing of energy, fitting or files.
# Comment lines are ignored. Prints every violation as FILE:LINE: text and exits 1; exits 0 when
# there is none. A new command that drives the GPU goes into ENGINE_USERS.
# Usage: scripts/check_layering.sh [ROOT]   (ROOT: the repository, default this script's)
set -euo pipefail
ROOT="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
[ -d "$ROOT/src" ] || { echo "error: ROOT $ROOT: no src/ directory" >&2; exit 2; }
ENGINE_USERS=" src/cli/bench.rs src/cli/selftest.rs src/cli/engine_run.rs "
ABOVE='measure|fit|report|design|dataset|cli|analytic|sweetspot'
USERS="$(echo $ENGINE_USERS)"
USES_ENGINE='\bengine::|\b(crate|energy_fit)::engine\b|use (crate|energy_fit|super)::\{[^}]*\bengine\b'
USES_ABOVE="\\b(crate|energy_fit)::($ABOVE)\\b|super::super::($ABOVE)\\b|use (crate|energy_fit)::\\{[^}]*\\b($ABOVE)\\b"

# Lines of $1 matching $2, as LINE:text, comment lines left out.
code_hits() { grep -nE "$2" "$1" | grep -vE '^[0-9]+:[[:space:]]*//' || true; }

bad=0
while IFS= read -r f; do
    rel="${f#"$ROOT"/}"
    case "$rel" in
    src/engine/*)
        hits="$(code_hits "$f" "$USES_ABOVE")"
        why="the engine uses a module above it (${ABOVE//|/, })" ;;
    src/measure/*) continue ;;
    *)
        [[ "$ENGINE_USERS" == *" $rel "* ]] && continue
        hits="$(code_hits "$f" "$USES_ENGINE")"
        why="only src/measure/ and the GPU commands ($USERS) may use the engine" ;;
    esac
    if [ -n "$hits" ]; then
        bad=1
        while IFS= read -r h; do echo "$rel:$h   <- $why"; done <<< "$hits"
    fi
done < <(find "$ROOT/src" -name '*.rs' | sort)
if [ "$bad" = 1 ]; then
    echo "layering: violations above (docs/architecture.md, \"The dependency rule\")" >&2
    exit 1
fi
echo "layering ok: the engine is used only by src/measure/ and $USERS; it uses nothing above it"
