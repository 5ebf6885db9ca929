#!/usr/bin/env bash
# Target (issue 6, "Speed"): an audit of 10,000 Pods using 500 distinct images (from a file)
# against the loopback registry in at most 5 s, with no manifest or blob request made twice in
# one audit (counted). Results: docs/BENCHMARKS.md, section 6.
#
# 1. Start Debian's docker-registry on a free 127.0.0.1 port with its own temporary storage and
#    its access log (one combined-format line per request, on its stdout) written to a file.
# 2. benches/audit_setup.py pushes 500 images `svc/app-N:1.0` (2-3 gzip tar layers each, base
#    layers shared by 100 images, runtime layers by 20) and writes live.json (500 Deployments,
#    500 ReplicaSets, 10,000 Pods whose imageIDs are the pushed manifest digests) and the policy.
# 3. One audit with the access log read from a mark: total requests, per method, and the
#    (method, URI) pairs requested more than once; tollgate's own `registryRequests`.
# 4. hyperfine: `tollgate audit --live-file live.json --policy policy.yaml --format json`.
#
# Usage: bash benches/audit.sh     (RUNS=N hyperfine runs, default 10; IMAGES=, PODS_PER_IMAGE=)
# Needs Debian's docker-registry, hyperfine, jq and python3. Everything is bounded in time: the
# registry runs under `timeout`, and so do the setup, each audit and hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
IMAGES=${IMAGES:-500}
PODS_PER_IMAGE=${PODS_PER_IMAGE:-20}

missing=()
[[ -x /usr/bin/docker-registry || -x /usr/sbin/docker-registry ]] || missing+=(docker-registry)
command -v hyperfine > /dev/null || missing+=(hyperfine)
command -v jq > /dev/null || missing+=(jq)
command -v python3 > /dev/null || missing+=(python3)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt-get install -y "${missing[@]}"
fi
registry_bin=/usr/bin/docker-registry
[[ -x $registry_bin ]] || registry_bin=/usr/sbin/docker-registry

timeout 900 cargo build --release --locked
bin=$PWD/target/release/tollgate

tmp=$(mktemp -d)
reg_pid=
cleanup() {
  if [[ -n "$reg_pid" ]]; then
    kill -TERM "$reg_pid" 2> /dev/null || true
    wait "$reg_pid" 2> /dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The registry: a free port from the OS (retried, another process could take it first).
for attempt in 1 2 3 4 5; do
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat > "$tmp/registry.yml" << EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $tmp/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: tollgate-bench
EOF
  # The access log goes to the registry's stdout, its own log to stderr.
  timeout 1200 "$registry_bin" serve "$tmp/registry.yml" >> "$tmp/access.log" 2>> "$tmp/registry.log" &
  reg_pid=$!
  up=
  for _ in $(seq 200); do
    kill -0 "$reg_pid" 2> /dev/null || break
    if curl -s -o /dev/null --noproxy '*' "http://127.0.0.1:$port/v2/"; then up=1; break; fi
    sleep 0.05
  done
  [[ -n "$up" ]] && break
  kill -TERM "$reg_pid" 2> /dev/null || true
  wait "$reg_pid" 2> /dev/null || true
  reg_pid=
  echo "registry did not start on port $port (attempt $attempt)" >&2
done
[[ -n "$reg_pid" ]] || { cat "$tmp/registry.log" >&2; exit 1; }
host=127.0.0.1:$port
echo "registry $host (docker-registry $("$registry_bin" --version | awk '{ print $3 }'))"

# 2. The fixture.
start=$(date +%s.%N)
timeout 600 python3 benches/audit_setup.py "$host" "$tmp" "$IMAGES" "$PODS_PER_IMAGE"
echo "setup took $(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.1f", a - b }') s; live.json $(du -h "$tmp/live.json" | cut -f1)"
mkdir "$tmp/docker"   # an empty docker config dir: anonymous pulls
export DOCKER_CONFIG=$tmp/docker
audit=("$bin" audit --live-file "$tmp/live.json" --policy "$tmp/policy.yaml" --format json)

# 3. One audit, its requests counted from the registry's access log (from a mark: the bytes
# written before it are skipped, which is the log cleared without touching the registry).
echo
echo "== requests of one audit"
sleep 0.5
mark=$(stat -c %s "$tmp/access.log")
# The registry's CPU time (user + system, from /proc) over the audit: `timeout` -> registry.
registry_proc=$(pgrep -P "$reg_pid" | head -n 1 || true)
reg_cpu() { awk '{ print $14 + $15 }' "/proc/$registry_proc/stat" 2> /dev/null || echo 0; }
cpu_before=$(reg_cpu)
code=0
start=$(date +%s.%N)
timeout 120 "${audit[@]}" > "$tmp/audit.json" 2> "$tmp/audit.err" || code=$?
wall=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.0f", (a - b) * 1000 }')
cpu_after=$(reg_cpu)
sleep 0.5   # the access log line is written after the response
echo "wall $wall ms; registry CPU during it: $(awk -v a="$cpu_after" -v b="$cpu_before" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", (a - b) * 1000 / t }') ms"
tail -c +"$((mark + 1))" "$tmp/access.log" > "$tmp/audit-access.log"
echo "exit code $code"
jq -c '.summary' "$tmp/audit.json"
jq -r '"errors: \(.errors | length)", (.errors[:5][])' "$tmp/audit.json"
jq -r '[.images[].findings[]?.kind] | group_by(.) | map("\(.[0]): \(length)") | "findings: \(if length == 0 then "none" else join(", ") end)"' "$tmp/audit.json"
[[ -s "$tmp/audit.err" ]] && { echo "stderr:"; head -n 5 "$tmp/audit.err"; }
# Combined log format: ... "METHOD URI HTTP/1.1" STATUS SIZE ...
sed -n 's/^[^"]*"\([A-Z]*\) \([^ ]*\) HTTP\/[0-9.]*" \([0-9]*\) .*/\1 \2 \3/p' \
  "$tmp/audit-access.log" > "$tmp/requests.txt"
total=$(wc -l < "$tmp/requests.txt")
echo "registry access log: $total requests (tollgate's summary.registryRequests: $(jq '.summary.registryRequests' "$tmp/audit.json"))"
echo "per method and status:"
awk '{ print "  " $1, $3 }' "$tmp/requests.txt" | sort | uniq -c | sort -rn
echo "per kind of URI:"
awk '{ k = "other"; if ($2 ~ /\/manifests\//) k = "manifest"; else if ($2 ~ /\/blobs\//) k = "blob"; else if ($2 == "/v2/") k = "/v2/"; print "  " $1, k }' \
  "$tmp/requests.txt" | sort | uniq -c | sort -rn
echo "a sample of each:"
awk '!seen[$1 " " ($2 ~ /\/manifests\// ? "m" : "b")]++ { print "  " $1, $2 }' "$tmp/requests.txt"
awk '{ print $1, $2 }' "$tmp/requests.txt" | sort | uniq -d -c | sort -rn > "$tmp/dups.txt"
dup_pairs=$(wc -l < "$tmp/dups.txt")
dup_mb=$(awk '$3 ~ /\/(manifests|blobs)\// { n++ } END { print n + 0 }' "$tmp/dups.txt")
echo "(method, URI) pairs requested more than once: $dup_pairs ($dup_mb of them manifests or blobs)"
head -n 20 "$tmp/dups.txt"
echo "expected distinct objects: $(wc -l < "$tmp/images.tsv") manifests, $(awk -F '\t' '{ n += split($3, a, " ") } END { print n }' "$tmp/images.tsv") repository blobs"

# 4. Timing.
echo
echo "== hyperfine, $RUNS runs"
# The same audit with --no-resolve (policy rules only, no registry request) shows what reading
# the 10,000 pods and evaluating the policy cost on their own.
timeout 900 hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$tmp/hyperfine.json" \
  -n "tollgate audit ($((IMAGES * PODS_PER_IMAGE)) pods, $IMAGES images)" "${audit[*]}" \
  -n "tollgate audit --no-resolve" "${audit[*]} --no-resolve"
jq -r '.results[] | "\(.command): mean \(.mean * 1000 | round) ms, median \(.median * 1000 | round) ms, min \(.min * 1000 | round) ms, max \(.max * 1000 | round) ms, user \(.user * 1000 | round) ms, system \(.system * 1000 | round) ms"' \
  "$tmp/hyperfine.json"
echo "target: at most 5 s; no manifest or blob request made twice (found: $dup_mb)"
