#!/usr/bin/env bash
# Target: while one namespace floods `tollgate serve` with reviews whose images sit on a slow
# registry, another namespace's review of a healthy image on that same registry is answered
# with its digest resolved (never "could not check"), within --registry-deadline, at a latency
# close to the one it has without the flood. Results: docs/BENCHMARKS.md.
#
# Everything on loopback; every run is bounded in requests and in time (the servers live at
# most 10 minutes, the whole run at most 20). The registry (Debian's docker-registry), the slow
# proxy in front of it, the servers and the clients are driven by the `flood` bench binary
# (benches/flood.rs), which says what it measures:
#   - alone: REQUESTS healthy reviews, CONCURRENCY at a time, each a cold walk of its own image;
#   - under flood: FLOODERS clients in namespace `flood` send 32-image reviews in a loop (each
#     request to the slow repositories held 30 s), and meanwhile REQUESTS more healthy reviews
#     from namespace `web`, whose images are on the same registry host.
# Each line: the healthy reviews' latency (p50, p99, max) and their answers.
#
# Usage: bash benches/flood.sh
#   REQUESTS=60 CONCURRENCY=4 FLOODERS=8 (the defaults)
#   BASELINE=/path/to/an/older/tollgate: runs that binary too, side by side in the same run
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-60}
CONCURRENCY=${CONCURRENCY:-4}
FLOODERS=${FLOODERS:-8}

if ! [[ -x /usr/bin/docker-registry || -x /usr/sbin/docker-registry ]]; then
  echo "installing docker-registry"
  apt-get install -y docker-registry
fi

cargo build --release --locked
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate
flood=$(cargo bench --locked --bench flood --no-run --message-format=json 2> /dev/null \
  | grep '"kind":\["bench"\]' | grep '"name":"flood"' \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[[ -x "$flood" ]] || { echo "could not find the flood bench binary" >&2; exit 1; }

args=(flood --tollgate "$bin" --requests "$REQUESTS" --concurrency "$CONCURRENCY"
  --flooders "$FLOODERS")
[[ -z "${BASELINE:-}" ]] || args+=(--baseline "$BASELINE")
echo "tollgate $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with local changes)'), $(nproc) cores"
timeout 1200 "$flood" "${args[@]}"
