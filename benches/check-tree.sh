#!/usr/bin/env bash
# Target: `tollgate check` over a repository of 500 files / 2,000 resources takes < 0.2 s wall
# and <= 0.1 ms of CPU per resource (kubeconform's published baseline: 0.76 ms per resource).
# `cat` of the same files is measured alongside as the I/O floor. Results: docs/BENCHMARKS.md.
#
# Usage: bash benches/check-tree.sh [BINARY...]   (RUNS=N timed runs each, default 20)
#   Each BINARY (default: this tree's release build) runs on the same tree in the same run, so
#   a change is measured side by side with its baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}

if (($#)); then
  bins=("$@")
else
  cargo build --release --locked
  bins=("${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate")
fi
tree=$(mktemp -d)
times=$(mktemp -d)
trap 'rm -rf "$tree" "$times"' EXIT

gen=$(python3 benches/gen_tree.py "$tree")   # "500 files, 2000 resources, N bytes (...)"
echo "tree: $gen"
read -r _ _ resources _ _ _ <<< "$gen"

cat_all() { find "$tree" -name '*.yaml' -print0 | xargs -0 cat > /dev/null; }
# The tree has violations on purpose, so exit 1 is the expected result; anything else fails.
names=()
for i in "${!bins[@]}"; do
  rc=0
  "${bins[$i]}" check "$tree" --format json > /dev/null || rc=$?
  [[ $rc -eq 1 ]] || { echo "${bins[$i]} exited $rc, expected 1 (violations)" >&2; exit 1; }
  eval "tollgate$i() { \"\${bins[$i]}\" check \"\$tree\" --format json > /dev/null || [[ \$? -eq 1 ]]; }"
  names+=("tollgate$i")
  echo "tollgate$i: ${bins[$i]}"
done
cat_all   # warm the page cache (the generator just wrote the files, but be sure)

# bash's `time` reads getrusage with 1 ms resolution; GNU time's %U/%S truncate to 10 ms,
# a bias of several percent on a run this short.
TIMEFORMAT='%3R %3U %3S'
# Interleaved, so that a change in the machine's load falls on every binary alike.
for _ in $(seq "$RUNS"); do
  for f in cat_all "${names[@]}"; do { time "$f" 2> /dev/null; } 2>> "$times/$f"; done
done

echo
echo "== $RUNS runs each, bash time: wall mean / min, CPU = user+sys"
for f in cat_all "${names[@]}"; do
  awk -v name="$f" -v n="$resources" '
    { wall += $1; cpu += $2 + $3; if (NR == 1 || $1 < min) min = $1 }
    END { printf "%-9s wall mean %6.1f ms  min %6.1f ms   CPU mean %6.1f ms = %.4f ms/resource\n",
          name, 1000 * wall / NR, 1000 * min, 1000 * cpu / NR, 1000 * cpu / NR / n }' "$times/$f"
done
for f in "${names[@]}"; do
  awk -v name="$f" 'FNR == 1 { f++ } { w[f] += $1 } END { printf "ratio %s/cat (mean wall): %.2f\n", name, w[2] / w[1] }' \
    "$times/cat_all" "$times/$f"
done
echo "targets: tollgate wall < 200 ms, CPU <= 0.1 ms/resource (kubeconform: 0.76 ms/resource)"

# hyperfine gives finer wall statistics (warm-up, sigma, shell start-up subtracted).
if command -v hyperfine > /dev/null; then
  echo
  commands=(-n cat "find '$tree' -name '*.yaml' -print0 | xargs -0 cat > /dev/null")
  for i in "${!bins[@]}"; do
    commands+=(-n "tollgate$i" "'${bins[$i]}' check '$tree' --format json > /dev/null")
  done
  hyperfine --warmup 3 --runs "$RUNS" --ignore-failure "${commands[@]}"
else
  echo "(hyperfine not installed, wall from bash time only: apt-get install -y hyperfine)"
fi
