#!/usr/bin/env bash
# Target (issue 3): the full walk of a 2-platform index with 20 layers per platform on the
# loopback registry, cold and warm, side by side with `skopeo inspect` (which fetches only the
# manifest and config) of the same image. Cold full walk no slower than skopeo's partial look;
# warm answer under 1 ms; requests per walk reported, none repeated. Results: docs/BENCHMARKS.md.
#
# 1. `cargo bench --bench walk`: in-process cold and warm walks, request counts, the registry's
#    own floor, and the processes (tollgate verify, skopeo inspect), all in one run.
# 2. hyperfine: a cold `tollgate verify` process (all platforms, and linux/amd64 only, the one
#    platform skopeo looks at) against `skopeo inspect` variants, on a registry served by the
#    bench binary (WALK_SERVE=1) for as long as this script runs.
# 3. Where the time goes: HTTP requests per run of each command, and the registry's own CPU
#    time per run (from /proc), plus its CPU per bare `GET /v2/`.
#
# Usage: bash benches/walk.sh     (RUNS=N for the number of rounds / hyperfine runs, default 30)
# Needs Debian's docker-registry, skopeo, hyperfine and jq (installed with apt-get if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}

missing=()
[[ -x /usr/bin/docker-registry || -x /usr/sbin/docker-registry ]] || missing+=(docker-registry)
command -v skopeo > /dev/null || missing+=(skopeo)
command -v hyperfine > /dev/null || missing+=(hyperfine)
command -v jq > /dev/null || missing+=(jq)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt-get install -y "${missing[@]}"
fi

cargo build --release --locked
bin=$PWD/target/release/tollgate
# The bench binary: its path from cargo's JSON messages (the `walk` bench target).
walk=$(cargo bench --locked --bench walk --no-run --message-format=json 2> /dev/null \
  | grep '"kind":\["bench"\]' | grep '"name":"walk"' \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[[ -x "$walk" ]] || { echo "could not find the walk bench binary" >&2; exit 1; }

echo "== 1. in-process walks and processes, $RUNS rounds (cargo bench --bench walk)"
WALK_RUNS=$RUNS "$walk" --bench

echo
echo "== 2. hyperfine, cold processes, $RUNS runs each"
tmp=$(mktemp -d)
serve_pid=
cleanup() {
  # Closing the bench's stdin makes it stop its registry and exit; the registry also runs
  # under `timeout 600`, and the bench under `timeout 900`, should anything hang.
  exec 3>&- 4<&-
  if [[ -n "$serve_pid" ]]; then
    for _ in $(seq 100); do kill -0 "$serve_pid" 2> /dev/null || break; sleep 0.1; done
    kill -TERM "$serve_pid" 2> /dev/null || true
    wait "$serve_pid" 2> /dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkfifo "$tmp/in" "$tmp/out"
WALK_SERVE=1 timeout 900 "$walk" < "$tmp/in" > "$tmp/out" &
serve_pid=$!
exec 3> "$tmp/in" 4< "$tmp/out"
read -r -t 120 ready host image <&4 || true
[[ "${ready:-}" == READY ]] || { echo "the bench did not serve the image" >&2; exit 1; }
echo "registry $host, image $image"

printf 'apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: bench-walk\nspec:\n  registries:\n    - prefix: %s\n      insecure: true\n' \
  "$host" > "$tmp/policy.yaml"
mkdir "$tmp/docker"   # an empty docker config dir: anonymous, like the bench
verify=("$bin" verify --policy "$tmp/policy.yaml" --format json "$image")
# skopeo looks at one platform; this is tollgate's full walk of that one platform only.
verify_amd64=("$bin" verify --policy "$tmp/policy.yaml" --format json --platform linux/amd64 "$image")

# Check once that the CLI walks the whole image (46 requests, pullable) before timing it.
DOCKER_CONFIG=$tmp/docker "${verify[@]}" 3>&- 4<&- > "$tmp/verify.json"
jq -r '.images[0] | "tollgate verify: \(.verdict), \(.resolution.requests) requests"' "$tmp/verify.json"
DOCKER_CONFIG=$tmp/docker "${verify_amd64[@]}" 3>&- 4<&- \
  | jq -r '.images[0] | "tollgate verify --platform linux/amd64: \(.verdict), \(.resolution.requests) requests"'
skopeo inspect --tls-verify=false "docker://$image" 3>&- 4<&- \
  | jq -r '"skopeo inspect: \(.Architecture)/\(.Os), \(.Layers | length) layers, tags \(.RepoTags)"'

DOCKER_CONFIG=$tmp/docker hyperfine -N --warmup 3 --runs "$RUNS" \
  --export-json "$tmp/hyperfine.json" \
  -n 'tollgate verify (cold full walk)' "${verify[*]}" \
  -n 'tollgate verify --platform linux/amd64' "${verify_amd64[*]}" \
  -n 'skopeo inspect' "skopeo inspect --tls-verify=false docker://$image" \
  -n 'skopeo inspect --no-tags' "skopeo inspect --tls-verify=false --no-tags docker://$image" \
  -n 'skopeo inspect --raw' "skopeo inspect --tls-verify=false --raw docker://$image" \
  3>&- 4<&-

echo
# Ratios of means and of medians (a median shrugs off the odd outlier of a shared machine).
jq -r 'def ms: . * 10000 | round / 10;
  def x(a; b): a / b * 100 | round / 100;
  .results as $r
  | ($r[] | select(.command | startswith("tollgate"))) as $t
  | $r[] | select(.command | startswith("skopeo"))
  | "\($t.command) / \(.command): mean \($t.mean | ms) / \(.mean | ms) ms = \(x($t.mean; .mean))x, median \($t.median | ms) / \(.median | ms) ms = \(x($t.median; .median))x"' \
  "$tmp/hyperfine.json"
echo "target: tollgate verify (full walk) no slower than skopeo inspect (ratio <= 1)"

echo
echo "== 3. where the time goes: HTTP requests per run and the registry's CPU per run"
# skopeo's requests from its --debug log (one line per request, the failed HTTPS ping
# included); the registry's user+system CPU from /proc over 20 runs of each command.
# The registry: bench (child of `timeout 900`) -> `timeout 600` -> docker-registry.
bench_pid=$(pgrep -P "$serve_pid" | head -n 1 || true)
timeout_pid=$(pgrep -x -P "${bench_pid:-0}" timeout | head -n 1 || true)
reg_pid=$(pgrep -P "${timeout_pid:-0}" | head -n 1 || true)
ticks=$(getconf CLK_TCK)
reg_cpu() { awk '{ print $14 + $15 }' "/proc/$reg_pid/stat"; }
per_run() {   # name, requests per run, command...
  local name=$1 requests=$2 before after
  shift 2
  if [[ -n "$reg_pid" && -r /proc/$reg_pid/stat ]]; then
    before=$(reg_cpu)
    for _ in $(seq 20); do DOCKER_CONFIG=$tmp/docker "$@" 3>&- 4<&- > /dev/null; done
    after=$(reg_cpu)
    awk -v n="$name" -v r="$requests" -v a="$after" -v b="$before" -v t="$ticks" \
      'BEGIN { printf "%-28s %3s requests   registry CPU %5.1f ms per run\n", n, r, (a - b) * 1000 / t / 20 }'
  else
    printf '%-28s %3s requests   (registry process not found)\n' "$name" "$requests"
  fi
}
skopeo_requests() {
  skopeo --debug inspect --tls-verify=false "$@" "docker://$image" 2>&1 > /dev/null 3>&- 4<&- \
    | grep -c 'msg="GET '
}
per_run 'tollgate verify' "$(jq '.images[0].resolution.requests' "$tmp/verify.json")" "${verify[@]}"
per_run 'tollgate verify (amd64 only)' \
  "$(DOCKER_CONFIG=$tmp/docker "${verify_amd64[@]}" 3>&- 4<&- | jq '.images[0].resolution.requests')" \
  "${verify_amd64[@]}"
per_run 'skopeo inspect' "$(skopeo_requests)" skopeo inspect --tls-verify=false "docker://$image"
per_run 'skopeo inspect --no-tags' "$(skopeo_requests --no-tags)" \
  skopeo inspect --tls-verify=false --no-tags "docker://$image"
per_run 'skopeo inspect --raw' "$(skopeo_requests --raw)" \
  skopeo inspect --tls-verify=false --raw "docker://$image"
# The registry's fixed cost per request: bare `/v2/` pings on one keep-alive connection.
if [[ -n "$reg_pid" && -r /proc/$reg_pid/stat ]] && command -v curl > /dev/null; then
  pings=(); for _ in $(seq 200); do pings+=("http://$host/v2/"); done
  before=$(reg_cpu)
  curl -s "${pings[@]}" 3>&- 4<&- > /dev/null
  after=$(reg_cpu)
  awk -v a="$after" -v b="$before" -v t="$ticks" \
    'BEGIN { printf "registry CPU per bare GET /v2/ (200 on one connection): %.2f ms\n", (a - b) * 1000 / t / 200 }'
fi
