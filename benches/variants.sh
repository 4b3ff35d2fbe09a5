# Sourced by attn_variants.sh, decode_variants.sh and ncu_attention.sh, which run one binary under several NVRTC option
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
# variants_res DEFAULT: RES, the results folder ($OUT, else DEFAULT), created.
variants_res() { RES="${OUT:-$1}"; mkdir -p "$RES"; }
# variant_name OPTS: a file-name part for an option list ("" -> base, "-DTC_A=0 -DTC_X=1" ->
# TC_A-0__TC_X-1). Only A-Z a-z 0-9 _ -: the GPU machine hands back no file whose name has
# other characters ('=' and '+' included).
variant_name() { echo "${1:-base}" | tr '=' '-' | tr -c 'A-Za-z0-9_\n-' '_' | sed 's/^-D//; s/_-D/__/g'; }
# variant_selftest RES NAME OPTS: the bf16 kernel selftest plus the forward check of $LLM (default
# llama-3.2-1b) under OPTS into RES/selftest-NAME.txt, or a "skipped" file with SELFTEST=0; sets st
# to its exit status (0 when skipped).
variant_selftest() {
    if [ "${SELFTEST:-1}" = 0 ]; then
        echo "skipped (SELFTEST=0)" > "$1/selftest-$2.txt"
        st=0
    else
        ENERGY_FIT_NVRTC_OPTS="$3" timeout 150 "$BIN" selftest --dtype bf16 --llm "${LLM:-llama-3.2-1b}" > "$1/selftest-$2.txt" 2>&1
        st=$?
    fi
}
# variant_line RES NAME: the summary's "selftest rc=…; bench rc=…" part for variant NAME ($st, $bt).
variant_line() {
    echo "selftest rc=$st ($(grep -c '^ok' "$1/selftest-$2.txt") ok, $(grep -c '^FAIL' "$1/selftest-$2.txt") failed); bench rc=$bt"
}
