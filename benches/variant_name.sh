# Sourced by attn_variants.sh and ncu_attention.sh. variant_name OPTS: a file-name part for an NVRTC
# option list ("" -> base, "-DTC_EXP2_FTZ=0 -DTC_X=1" -> TC_EXP2_FTZ-0__TC_X-1). Only A-Z a-z 0-9 _ -:
# the GPU machine hands back no file whose name has other characters ('=' and '+' included).
variant_name() { echo "${1:-base}" | tr '=' '-' | tr -c 'A-Za-z0-9_\n-' '_' | sed 's/^-D//; s/_-D/__/g'; }
