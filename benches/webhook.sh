#!/usr/bin/env bash
# Target: `tollgate serve` answering a 10 KB Pod AdmissionReview with static rules over
# 64 concurrent keep-alive TLS connections: p99 at most 2 ms, throughput at least 60% of a no-op
# axum+rustls server returning a canned response (run side by side), resident memory under load
# at most 64 MiB; with registry rules and a warm cache, p99 at most 3 ms. Results:
# docs/BENCHMARKS.md.
#
# Everything on loopback; every run is bounded in time and in requests. The load client, the
# no-op server, the certificates and the test registry are roles of the `webhook_load` bench
# binary (benches/webhook_load.rs).
#
# 1. Static rules (--no-resolve), the fixture tests/fixtures/admission/pod-create.json
#    (10,208 bytes compact): for each of ROUNDS rounds, a closed loop (maximum throughput) on the
#    no-op server and on tollgate, in alternating order; then open loops at each of RATES
#    requests per second (latency at a given load) on both.
# 2. Registry rules with a warm cache: a real registry (Debian's docker-registry) holding a base
#    image and three images built on it; the same Pod with its three containers running those
#    images (tag@digest); tollgate resolves every image end to end and checks the base lineage.
#    A closed loop, then the open loops.
#    Issue 14's signature target (p99 with signature rules on and a warm cache within 10% of the
#    same run without them): each image also carries one cosign signature (tag scheme, ECDSA
#    P-256), and a second server runs the same policy plus a `spec.signatures` rule trusting that
#    key. For each of ROUNDS rounds, a closed loop and the open loops at RATES on both servers,
#    in alternating order (round 1 without first, round 2 with first, ...). Each line is followed
#    by the server's CPU per request (server cores / requests per second).
# After each part: tollgate's peak resident memory (VmHWM) and its registry/cache counters
# (`tollgate_registry_cache_total{result="hit"}` counts image walks, signatures included,
# answered without a registry request).
#
# Usage: bash benches/webhook.sh
#   DURATION=10 WARMUP=2 ROUNDS=2 RATES="1000 4000" CONNECTIONS=64 PARTS="1 2" (the defaults)
#   BASELINE=/path/to/an/older/tollgate: part 1 also runs that binary, side by side in the same
#   rounds and rates (to measure a change against the build before it, in one run).
#   PERF_DIR=/tmp/perf: record each server with `perf record` during each measured run, one
#   file per run (PERF_ARGS, default `-F 1999`; `-F 499 --call-graph dwarf,16384` for call
#   graphs). Build with symbols for readable profiles:
#   CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
#   CARGO_TARGET_DIR=/tmp/target-prof (the script's own `cargo build` then keeps them).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
RATES=${RATES:-"1000 4000"}
CONNECTIONS=${CONNECTIONS:-64}
PARTS=${PARTS:-"1 2"}

missing=()
[[ -x /usr/bin/docker-registry || -x /usr/sbin/docker-registry ]] || missing+=(docker-registry)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v curl > /dev/null || missing+=(curl)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt-get install -y "${missing[@]}"
fi

cargo build --release --locked
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate
load=$(cargo bench --locked --bench webhook_load --no-run --message-format=json 2> /dev/null \
  | grep '"kind":\["bench"\]' | grep '"name":"webhook_load"' \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[[ -x "$load" ]] || { echo "could not find the webhook_load bench binary" >&2; exit 1; }

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

"$load" certs "$tmp/certs"
body=tests/fixtures/admission/pod-create.json

# Wait for "<prefix>ADDR" in a file; print ADDR.
await_addr() {
  local file=$1 prefix=$2
  for _ in $(seq 300); do
    if addr=$(grep -m1 -o "${prefix}[0-9.]*:[0-9]*" "$file" 2> /dev/null); then
      echo "${addr#"$prefix"}"
      return
    fi
    sleep 0.05
  done
  echo "no address in $file:" >&2
  cat "$file" >&2
  exit 1
}

# start_tollgate NAME ARGS...: sets tg_pid, tg_addr, tg_metrics.
start_tollgate() {
  local name=$1
  shift
  timeout 1800 "$bin" --log-format json serve \
    --tls-cert "$tmp/certs/tls.crt" --tls-key "$tmp/certs/tls.key" \
    --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 "$@" 2> "$tmp/$name.log" &
  tg_pid=$!
  pids+=("$tg_pid")
  tg_addr=$(await_addr "$tmp/$name.log" "listening on https://")
  tg_metrics=$(await_addr "$tmp/$name.log" "metrics on http://")
  # `timeout` is the parent: the server is its child (named as the binary is: a BASELINE may be
  # called otherwise).
  tg_server=$(pgrep -P "$tg_pid" -x "$(basename "$bin" | cut -c1-15)" || echo "$tg_pid")
}

# run_load LABEL SERVER_PID ADDR BODY [--rate R]: the load line, then where the CPU went during
# the run (server, load client, everything else on the machine) in cores.
run_load() {
  local label=$1 pid=$2 addr=$3 file=$4 out s0 s1 t0 t1 w0 w1
  shift 4
  s0=$(proc_cpu "$pid"); t0=$(busy); w0=$(date +%s.%N)
  local perf_pid=
  if [[ -n "${PERF_DIR:-}" ]]; then
    # A flat profile of the server for the measured part of the run (after the warm-up).
    mkdir -p "$PERF_DIR"
    (sleep "$WARMUP"; exec perf record -q ${PERF_ARGS:--F 1999} -p "$pid" -o "$PERF_DIR/$(echo "$label" | tr -cs 'a-zA-Z0-9' '-').data" -- sleep "$DURATION") > /dev/null 2>&1 &
    perf_pid=$!
  fi
  out=$(/usr/bin/time -f "client-cpu %U %S" "$load" load --addr "$addr" --ca "$tmp/certs/ca.pem" \
    --body "$file" --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
    --max-requests 2000000 --label "$label" "$@" 2>&1)
  [[ -z "$perf_pid" ]] || wait "$perf_pid" || true
  s1=$(proc_cpu "$pid"); t1=$(busy); w1=$(date +%s.%N)
  echo "$out" | grep -v '^client-cpu'
  echo "$out" | awk -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" -v w0="$w0" -v w1="$w1" -v hz="$hz" \
    -v label="$label" -v runs="$tmp/runs.tsv" '
    /^client-cpu/ { c = $2 + $3 }
    /req\/s;/ {
      for (i = 1; i < NF; i++) {
        if ($(i + 1) == "req/s;") rps = $i
        if ($i == "p99") p99 = $(i + 1)
      }
    }
    END {
      w = w1 - w0; s = (s1 - s0) / hz; all = (t1 - t0) / hz
      printf "    cpu (cores): server %.2f, load client %.2f, other processes %.2f", s / w, c / w, (all - s - c) / w
      if (rps > 0) printf "; server %.1f us per request", s / w / rps * 1e6
      printf "\n"
      # One line per run for the summary: label, p99 (ms), server us per request.
      if (rps > 0) printf "%s\t%s\t%.1f\n", label, p99, s / w / rps * 1e6 >> runs
    }'
}

hz=$(getconf CLK_TCK)
proc_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

memory() { # PID LABEL
  awk -v l="$2" '/^VmHWM|^VmRSS/ { printf "%s %s %s %s\n", l, $1, $2, $3 }' "/proc/$1/status"
}

counters() { # METRICS_ADDR
  curl -s "http://$1/metrics" \
    | grep -E '^tollgate_(registry_cache_total|registry_requests_total|registry_unavailable_total|admission_requests_total)' || true
}

timeout 1800 "$load" noop "$tmp/certs/tls.crt" "$tmp/certs/tls.key" > "$tmp/noop.out" &
noop_pid=$!
pids+=("$noop_pid")
noop_addr=$(await_addr "$tmp/noop.out" "listening on https://")
noop_server=$(pgrep -P "$noop_pid" || echo "$noop_pid")

if [[ " $PARTS " == *" 1 "* ]]; then
echo "== 1. static rules, $CONNECTIONS keep-alive TLS connections, ${DURATION}s per run after ${WARMUP}s warm-up"
if [[ -n "${BASELINE:-}" ]]; then
  current=$bin
  bin=$BASELINE
  start_tollgate baseline --no-resolve
  base_pid=$tg_pid base_server=$tg_server base_addr=$tg_addr
  bin=$current
fi
start_tollgate static --no-resolve
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then
    run_load "noop     round $round" "$noop_server" "$noop_addr" "$body"
    run_load "tollgate round $round" "$tg_server" "$tg_addr" "$body"
    [[ -z "${BASELINE:-}" ]] || run_load "baseline round $round" "$base_server" "$base_addr" "$body"
  else
    [[ -z "${BASELINE:-}" ]] || run_load "baseline round $round" "$base_server" "$base_addr" "$body"
    run_load "tollgate round $round" "$tg_server" "$tg_addr" "$body"
    run_load "noop     round $round" "$noop_server" "$noop_addr" "$body"
  fi
done
for rate in $RATES; do
  run_load "noop    " "$noop_server" "$noop_addr" "$body" --rate "$rate"
  run_load "tollgate" "$tg_server" "$tg_addr" "$body" --rate "$rate"
  [[ -z "${BASELINE:-}" ]] || run_load "baseline" "$base_server" "$base_addr" "$body" --rate "$rate"
done
memory "$tg_server" "tollgate (static)"
[[ -z "${BASELINE:-}" ]] || { memory "$base_server" "baseline (static)"; kill -TERM "$base_pid"; }
memory "$noop_server" "noop"
counters "$tg_metrics"
echo "decision log lines: $(grep -c '"admission decision"' "$tmp/static.log")"
kill -TERM "$tg_pid"
fi
[[ " $PARTS " == *" 2 "* ]] || exit 0

echo
echo "== 2. registry rules, warm cache (loopback docker-registry, 3 images + base lineage)"
mkfifo "$tmp/reg.in"
timeout 1800 "$load" registry "$tmp/reg" < "$tmp/reg.in" > "$tmp/reg.out" &
reg_role=$!
pids+=("$reg_role")
exec 3> "$tmp/reg.in"
for _ in $(seq 300); do grep -q READY "$tmp/reg.out" 2> /dev/null && break; sleep 0.1; done
grep -q READY "$tmp/reg.out" || { echo "the registry did not start" >&2; exit 1; }
start_tollgate registry --policy "$tmp/reg/policy.yaml" --registry-deadline 3s
reg_pid=$tg_pid reg_server=$tg_server reg_addr=$tg_addr reg_metrics=$tg_metrics
start_tollgate signed --policy "$tmp/reg/policy-signed.yaml" --registry-deadline 3s
sig_pid=$tg_pid sig_server=$tg_server sig_addr=$tg_addr sig_metrics=$tg_metrics
review=$tmp/reg/review.json
# Both caches warm before anything is timed (each run has its own warm-up as well).
"$load" load --addr "$reg_addr" --ca "$tmp/certs/ca.pem" --body "$review" --connections 4 \
  --duration 1 --warmup 0 --max-requests 1000 --label "warm registry" > /dev/null
"$load" load --addr "$sig_addr" --ca "$tmp/certs/ca.pem" --body "$review" --connections 4 \
  --duration 1 --warmup 0 --max-requests 1000 --label "warm signed" > /dev/null
echo "after warming (signed):"
counters "$sig_metrics"
unsigned_run() { run_load "registry rules           $1" "$reg_server" "$reg_addr" "$review" "${@:2}"; }
signed_run() { run_load "registry+signature rules $1" "$sig_server" "$sig_addr" "$review" "${@:2}"; }
for round in $(seq "$ROUNDS"); do
  for mode in closed $RATES; do
    args=()
    [[ $mode == closed ]] || args=(--rate "$mode")
    what="round $round, ${mode/closed/closed loop}"
    if ((round % 2)); then
      unsigned_run "$what" "${args[@]}"
      signed_run "$what" "${args[@]}"
    else
      signed_run "$what" "${args[@]}"
      unsigned_run "$what" "${args[@]}"
    fi
  done
done
memory "$reg_server" "tollgate (registry)"
memory "$sig_server" "tollgate (registry+signature)"
# One 10 s run's p99 moves by more than 10% between identical servers on a shared 2-core
# machine, so the comparison is of medians over the rounds (each round runs both, in
# alternating order), with the range beside them.
echo "summary over $ROUNDS rounds, median [min-max]:"
grep -E '^registry' "$tmp/runs.tsv" | sed -E 's/round [0-9]+, //' | awk -F'\t' '
  function median(list, n,   a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    lo = a[1]; hi = a[n]
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    signed = ($1 ~ /signature/); mode = $1; sub(/^registry(\+signature)? rules +/, "", mode)
    p99[mode, signed] = p99[mode, signed] " " $2; us[mode, signed] = us[mode, signed] " " $3
    if (!(mode in seen)) { seen[mode] = 1; order[++n] = mode }
  }
  END {
    for (k = 1; k <= n; k++) {
      m = order[k]
      a = median(p99[m, 0]); alo = lo; ahi = hi; b = median(p99[m, 1]); blo = lo; bhi = hi
      c = median(us[m, 0]); d = median(us[m, 1])
      printf "  %-12s p99 without %.3f ms [%s-%s], with %.3f ms [%s-%s]: with/without %.2f; server us per request %.1f -> %.1f (%+.1f)\n", m, a, alo, ahi, b, blo, bhi, b / a, c, d, d - c
    }
  }'
echo "counters, registry rules:"
counters "$reg_metrics"
echo "counters, registry+signature rules:"
counters "$sig_metrics"
echo "signature denials or warnings (should be none): $(grep -c 'signature-unverified' "$tmp/signed.log" || true)"
kill -TERM "$reg_pid" "$sig_pid"
# Closing its stdin lets the registry role stop its docker-registry (a TERM would leave that
# running until its own timeout).
exec 3>&-
wait "$reg_role" || true
