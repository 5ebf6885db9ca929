#!/usr/bin/env bash
# Target (issue 6): `tollgate rollout` over a deploy repository of 10,000 commits and 200
# workloads (50 behind, 5 of them since their first version) in at most 1 s (release build,
# live state from a file). Results: docs/BENCHMARKS.md.
#
# Usage: bash benches/rollout.sh
#   RUNS=N    timed runs (default 20; hyperfine warms up 3 times first).
# Needs python3, git and hyperfine (apt-get install -y hyperfine).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
command -v hyperfine > /dev/null || { echo "needs hyperfine: apt-get install -y hyperfine" >&2; exit 2; }
cargo build --release --locked
bin=$PWD/target/release/tollgate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 benches/gen_rollout.py "$work/repo"
live=$work/repo/.git/live.json
# Exit code 1 is the expected verdict (commits not rolled out), not a failure.
"$bin" rollout --repo "$work/repo" --live-file "$live" | tail -1 || true
hyperfine --warmup 3 --runs "$RUNS" -i -N \
  "$bin rollout --repo $work/repo --live-file $live --format json" \
  "git -C $work/repo log --first-parent --format=%H --name-only"
