#!/usr/bin/env bash
# Instructions per admission decision of `tollgate serve` (static rules, the 10 KB Pod of
# tests/fixtures/admission/pod-create.json), counted by callgrind: unlike requests per second,
# the count is the same whatever else the machine runs, so two builds can be compared on a busy
# machine. Results: docs/BENCHMARKS.md, section 4b.
#
# Each binary serves N_SMALL, then N_LARGE requests (one curl, one keep-alive TLS connection),
# each run under callgrind from start to a clean SIGTERM shutdown; the difference of the two
# totals divided by N_LARGE - N_SMALL is the cost of one request, start-up and shutdown taken
# out. Loopback only; every server is bounded by `timeout`.
#
# Usage: bash benches/hotpath-callgrind.sh BINARY [BINARY...]
#   N_SMALL=100 N_LARGE=600 (the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
N_SMALL=${N_SMALL:-100}
N_LARGE=${N_LARGE:-600}
for tool in valgrind curl timeout; do
  command -v "$tool" > /dev/null || { echo "$tool is missing (apt-get install $tool)" >&2; exit 2; }
done
(($# > 0)) || { echo "usage: $0 BINARY [BINARY...]" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$1" certs generate --service tollgate --namespace tollgate --out "$tmp/certs" > /dev/null
body=tests/fixtures/admission/pod-create.json

# instructions BINARY N: the total instructions callgrind counts for a server answering N requests.
instructions() {
  local bin=$1 n=$2 out="$tmp/callgrind.out" log="$tmp/serve.log"
  rm -f "$out" "$log"
  timeout -k 5 600 valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" serve --tls-cert "$tmp/certs/tls.crt" --tls-key "$tmp/certs/tls.key" \
    --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --no-resolve 2> "$log" &
  local pid=$! port=""
  for _ in $(seq 1 1200); do
    port=$(sed -n 's/.*listening on https:\/\/127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$log")
    [[ -n "$port" ]] && break
    sleep 0.1
  done
  [[ -n "$port" ]] || { echo "$bin did not start:" >&2; cat "$log" >&2; exit 1; }
  local urls=()
  for _ in $(seq 1 "$n"); do urls+=("https://tollgate.tollgate.svc:$port/validate"); done
  curl --silent --show-error --fail --cacert "$tmp/certs/ca.crt" \
    --resolve "tollgate.tollgate.svc:$port:127.0.0.1" -H 'Content-Type: application/json' \
    --data-binary @"$body" "${urls[@]}" > /dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out"
}

printf '%s\t%s\t%s\t%s\n' binary "instructions, $N_SMALL requests" "instructions, $N_LARGE requests" "per request"
for bin in "$@"; do
  small=$(instructions "$bin" "$N_SMALL")
  large=$(instructions "$bin" "$N_LARGE")
  printf '%s\t%s\t%s\t%s\n' "$bin" "$small" "$large" $(((large - small) / (N_LARGE - N_SMALL)))
done
