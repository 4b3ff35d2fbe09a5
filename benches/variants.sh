# Sourced by attn_variants.sh and ncu_attention.sh, which run one binary under several NVRTC option
# lists (ENERGY_FIT_NVRTC_OPTS).
# variants_bin USAGE ARGS...: BIN (absolute) from the first argument, or exit 2 with the usage line
# or with the path that is not an executable.
variants_bin() {
    local usage="$1"; shift
    if [ $# -lt 1 ]; then
        echo "usage: $usage (got $# arguments)" >&2
        exit 2
    fi
    BIN="$(realpath -m "$1")"
    [ -x "$BIN" ] || { echo "error: BIN $1: not an executable file (build one: scripts/dev_binary.sh)" >&2; exit 2; }
}
# variant_name OPTS: a file-name part for an option list ("" -> base, "-DTC_EXP2_FTZ=0 -DTC_X=1" ->
# TC_EXP2_FTZ-0__TC_X-1). Only A-Z a-z 0-9 _ -: the GPU machine hands back no file whose name has
# other characters ('=' and '+' included).
variant_name() { echo "${1:-base}" | tr '=' '-' | tr -c 'A-Za-z0-9_\n-' '_' | sed 's/^-D//; s/_-D/__/g'; }
