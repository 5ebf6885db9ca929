#!/usr/bin/env bash
# Instruction counts, by callgrind, of the hot paths: unlike requests per second, a count repeats
# for the same binary and input whatever else the machine runs, so a regression shows as a
# number that does not wobble. Results: docs/BENCHMARKS.md, section 10.
#
# Parts (PARTS, all by default):
# - decision: `tollgate serve` with the embedded policy and no registry (`--no-resolve`)
#   answering the 10 KB Pod review of tests/fixtures/admission/pod-create.json, over one
#   keep-alive TLS connection: the whole admission path, TLS and HTTP included.
# - registry, signed: the same with registry rules and a warm cache (webhook_load's `registry`
#   role: a loopback docker-registry with a base and three images, each signed once by cosign's
#   tag scheme), without and with a `spec.signatures` rule over the three images (issue 14's
#   "within 10%" pair, as benches/webhook.sh part 2 runs it).
# - yaml, yaml-full, eval, yaml+eval, json+eval: in process (the eval bench's fixture, a ~10 KB
#   Deployment of 12 containers, and the embedded default policy): loading the YAML with
#   positions (yaml-full: through yaml-rust2 alone, the fast path's baseline), evaluating the
#   parsed document (plus making its empty report), both, and the admission path's JSON parse
#   plus evaluation.
#
# Each count is the difference of two runs, N1 and N2 requests (or iterations), divided by
# N2 - N1: start-up, the first (cold) request and shutdown are in both runs and drop out.
# Servers run under callgrind from start to a clean SIGTERM shutdown; every process is bounded by
# `timeout` and stopped on exit, also on failure or interrupt. Loopback only.
#
# Usage: bash benches/instructions.sh [BINARY...]
#   Server parts run each BINARY (default: this tree's release build), side by side; the
#   in-process parts always run this tree's eval bench.
#   PARTS="decision registry signed yaml yaml-full eval yaml+eval json+eval"
#   N1=100 N2=600 (server requests), I1=10 I2=210 (in-process iterations)
#   KEEP=DIR keeps the callgrind outputs there (for callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."
PARTS=${PARTS:-"decision registry signed yaml yaml-full eval yaml+eval json+eval"}
N1=${N1:-100}
N2=${N2:-600}
I1=${I1:-10}
I2=${I2:-210}
missing=()
command -v valgrind > /dev/null || missing+=(valgrind)
command -v curl > /dev/null || missing+=(curl)
[[ -x /usr/bin/docker-registry || -x /usr/sbin/docker-registry ]] || missing+=(docker-registry)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt-get install -y "${missing[@]}"
fi

cargo build --release --locked
target=${CARGO_TARGET_DIR:-$PWD/target}
bench_exe() { # NAME: the path of a bench binary, built
  cargo bench --locked --bench "$1" --no-run --message-format=json 2> /dev/null \
    | grep '"kind":\["bench"\]' | grep "\"name\":\"$1\"" \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1
}
load=$(bench_exe webhook_load)
eval_bench=$(bench_exe eval)
[[ -x "$load" && -x "$eval_bench" ]] || { echo "could not build the webhook_load and eval benches" >&2; exit 1; }
(($# > 0)) || set -- "$target/release/tollgate"

tmp=$(mktemp -d)
pids=()
cleanup() {
  exec 3>&- 2> /dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2> /dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[[ -z "${KEEP:-}" ]] || mkdir -p "$KEEP"

"$load" certs "$tmp/certs"

# callgrind_total NAME COMMAND...: run COMMAND under callgrind; print its total instructions.
callgrind_total() {
  local name=$1 out="$tmp/$1.callgrind"
  shift
  timeout -k 5 900 valgrind --tool=callgrind --callgrind-out-file="$out" "$@" 2> "$tmp/$name.log" \
    > /dev/null
  [[ -z "${KEEP:-}" ]] || cp "$out" "$KEEP/$name.callgrind"
  sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out"
}

# serve_total NAME BINARY BODY N ARGS...: a server under callgrind answering N reviews of BODY
# over one keep-alive connection; print its total instructions.
serve_total() {
  local name=$1 bin=$2 body=$3 n=$4 out="$tmp/$1.callgrind" log="$tmp/$1.log"
  shift 4
  timeout -k 5 900 valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" serve --tls-cert "$tmp/certs/tls.crt" --tls-key "$tmp/certs/tls.key" \
    --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 "$@" 2> "$log" &
  local pid=$! port=""
  pids+=("$pid")
  for _ in $(seq 1 1200); do
    port=$(sed -n 's/.*listening on https:\/\/127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$log" 2> /dev/null)
    [[ -n "$port" ]] && break
    sleep 0.1
  done
  [[ -n "$port" ]] || { echo "$bin did not start:" >&2; cat "$log" >&2; exit 1; }
  local urls=()
  for _ in $(seq 1 "$n"); do urls+=("https://tollgate.tollgate.svc:$port/validate"); done
  curl --silent --show-error --fail --cacert "$tmp/certs/ca.pem" \
    --resolve "tollgate.tollgate.svc:$port:127.0.0.1" -H 'Content-Type: application/json' \
    --data-binary @"$body" "${urls[@]}" > "$tmp/$name.answers"
  # Every answer must be an admission: a denied or failed review is not the path measured.
  local allowed
  allowed=$(grep -o '"allowed":true' "$tmp/$name.answers" | wc -l)
  ((allowed == n)) || { echo "$name: $allowed of $n reviews allowed:" >&2; head -c 2000 "$tmp/$name.answers" >&2; exit 1; }
  kill -TERM "$pid"
  wait "$pid" || true
  [[ -z "${KEEP:-}" ]] || cp "$out" "$KEEP/$name.callgrind"
  sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out"
}

report() { # PART WHAT SMALL LARGE N1 N2
  printf '%-10s %-48s %14s %14s %12s\n' "$1" "$2" "$3" "$4" $((($4 - $3) / ($6 - $5)))
}
printf '%-10s %-48s %14s %14s %12s\n' part what "total at N1" "total at N2" "per one"

for part in $PARTS; do
  case $part in
    decision)
      for bin in "$@"; do
        a=$(serve_total decision-small "$bin" tests/fixtures/admission/pod-create.json "$N1" --no-resolve)
        b=$(serve_total decision-large "$bin" tests/fixtures/admission/pod-create.json "$N2" --no-resolve)
        report decision "$bin" "$a" "$b" "$N1" "$N2"
      done
      ;;
    registry | signed)
      if [[ ! -s "$tmp/reg/review.json" ]]; then
        mkfifo "$tmp/reg.in"
        timeout 3600 "$load" registry "$tmp/reg" < "$tmp/reg.in" > "$tmp/reg.out" &
        pids+=("$!")
        exec 3> "$tmp/reg.in"
        for _ in $(seq 300); do grep -q READY "$tmp/reg.out" 2> /dev/null && break; sleep 0.1; done
        grep -q READY "$tmp/reg.out" || { echo "the registry did not start" >&2; exit 1; }
      fi
      policy=$tmp/reg/policy.yaml
      [[ $part == registry ]] || policy=$tmp/reg/policy-signed.yaml
      for bin in "$@"; do
        # A deadline callgrind's slowness cannot reach: the first, cold walk must finish.
        a=$(serve_total "$part-small" "$bin" "$tmp/reg/review.json" "$N1" --policy "$policy" --registry-deadline 60s)
        b=$(serve_total "$part-large" "$bin" "$tmp/reg/review.json" "$N2" --policy "$policy" --registry-deadline 60s)
        report "$part" "$bin" "$a" "$b" "$N1" "$N2"
      done
      ;;
    yaml | yaml-full | eval | yaml+eval | json+eval)
      case $part in
        yaml) workload=parse_only ;;
        yaml-full) workload=parse_full_only ;;
        eval) workload=evaluate_only ;;
        yaml+eval) workload=parse_and_evaluate ;;
        json+eval) workload=json_parse_and_evaluate ;;
      esac
      a=$(TOLLGATE_COUNT="$workload:$I1" callgrind_total "$part-small" "$eval_bench")
      b=$(TOLLGATE_COUNT="$workload:$I2" callgrind_total "$part-large" "$eval_bench")
      report "$part" "eval bench, $workload" "$a" "$b" "$I1" "$I2"
      ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
