#!/usr/bin/env bash
# Writes the benchmarks' request to FILE: a 1 KiB chat body (exactly 1,024 bytes), not streamed.
# Usage: scripts/bench.d/chat-body.sh FILE
set -euo pipefail
PRE='{"model":"bench-model","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"'
SUF='"}],"max_tokens":64,"temperature":0,"stream":false}'
FILL=""; while [ ${#FILL} -lt 1024 ]; do FILL+="Summarise the attached incident report for the on-call channel. "; done
printf '%s%s%s' "$PRE" "${FILL:0:$((1024 - ${#PRE} - ${#SUF}))}" "$SUF" >"$1"
