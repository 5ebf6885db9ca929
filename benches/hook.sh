#!/usr/bin/env bash
# Target (issue 5): a pushed range of 1,000 commits touching 500 manifests (2,000 resources) in
# a generated repository of 10,000 commits: `tollgate hook pre-push` finishes in at most 300 ms
# (release build, offline rules) and within 2x of `git log --name-only --format=%H RANGE` over
# the same range, run side by side. Results: docs/BENCHMARKS.md.
#
# Usage: bash benches/hook.sh [--reuse] [BINARY...]
#   --reuse   keep the generated repository in $HOOK_BENCH_REPO (default
#             ${TMPDIR:-/tmp}/tollgate-hook-bench) and reuse it when it is already there;
#             without it the repository goes into a new temporary directory, removed at exit.
#   BINARY    tollgate binaries to run side by side on the same repository (default: this
#             tree's release build); the first is "hook", the others "hook 2", "hook 3"...
#   RUNS=N    timed runs per command (default 20; hyperfine warms up 3 times first).
# Needs python3, git and hyperfine (apt-get install -y hyperfine).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
reuse=false
[[ ${1:-} == --reuse ]] && { reuse=true; shift; }

command -v hyperfine > /dev/null || { echo "needs hyperfine: apt-get install -y hyperfine" >&2; exit 2; }
if (($#)); then
  bins=("$@")
else
  cargo build --release --locked
  bins=("${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate")
fi
bin=${bins[0]}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if $reuse; then
  repo=${HOOK_BENCH_REPO:-${TMPDIR:-/tmp}/tollgate-hook-bench}
  # The generator's output (the range and a summary) is kept inside the git directory.
  if [[ -f $repo/.git/tollgate-bench-range ]]; then
    echo "reusing $repo"
  else
    rm -rf "$repo"
    python3 benches/gen_repo.py "$repo" > "$work/gen"
    cp "$work/gen" "$repo/.git/tollgate-bench-range"
  fi
  cp "$repo/.git/tollgate-bench-range" "$work/gen"
else
  repo=$work/repo
  python3 benches/gen_repo.py "$repo" > "$work/gen"
fi
base=$(awk '$1 == "base" { print $2 }' "$work/gen")
head=$(awk '$1 == "head" { print $2 }' "$work/gen")
echo "generator: $(tail -n 1 "$work/gen")"
echo "repository: $(git -C "$repo" rev-list --count main) commits on main;" \
  "range $base..$head: $(git -C "$repo" rev-list --count "$base..$head") commits," \
  "$(git -C "$repo" diff --name-only "$base" "$head" | wc -l) files changed"

# git's pre-push input for `git push origin main` when the remote has the base.
input=$work/pre-push-input
echo "refs/heads/main $head refs/heads/main $base" > "$input"
hook=("$bin" hook pre-push origin --repo "$repo")

# One run, untimed, to show what was checked: the report's summary line (it goes to stderr, as
# git shows a hook's messages). The range has deny-level images on purpose, so exit 1 is the
# expected result; anything else fails the bench.
rc=0
"${hook[@]}" < "$input" 2> "$work/report" > /dev/null || rc=$?
[[ $rc -eq 1 ]] || { cat "$work/report" >&2; echo "hook exited $rc, expected 1 (denials)" >&2; exit 1; }
echo "hook exit code: $rc"
echo "hook report: $(grep -E '^(fail|pass|error) ' "$work/report")"
echo "hook report: $(grep -c '^apps/' "$work/report") files with findings"

# Context, not a target: `git cat-file --batch` of the 500 changed blobs is git's own cost of
# reading the content the hook must parse (git log --name-only reads no file content).
git -C "$repo" diff-tree -r "$base" "$head" | awk '{ print $4 }' > "$work/blobs"
echo

# hyperfine 1.15 has no --input, so the commands run under its shell (whose start-up it
# measures and subtracts) with the same redirections. Exit code 1 (denials) is expected: -i.
q() { printf '%q ' "$@"; }
others=()
for i in "${!bins[@]}"; do
  ((i == 0)) && continue
  others+=(-n "tollgate hook pre-push $((i + 1))"
    "$(q "${bins[$i]}" hook pre-push origin --repo "$repo")< $(q "$input")> /dev/null 2>&1")
done
hyperfine -i --warmup 3 --runs "$RUNS" --export-json "$work/times.json" \
  -n "tollgate hook pre-push" "$(q "${hook[@]}")< $(q "$input")> /dev/null 2>&1" "${others[@]}" \
  -n "git log --name-only" "$(q git -C "$repo" log --name-only --format=%H "$base..$head")> /dev/null" \
  -n "git cat-file --batch (500 blobs)" "$(q git -C "$repo" cat-file --batch --buffer)< $(q "$work/blobs")> /dev/null"

python3 - "$work/times.json" << 'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
hook, log = r["tollgate hook pre-push"], r["git log --name-only"]
cat = r["git cat-file --batch (500 blobs)"]
ms = lambda s: f"{1000 * s:6.1f} ms"
print()
extra = [(k.replace("tollgate hook pre-push", "hook"), v) for k, v in r.items()
         if k.startswith("tollgate hook pre-push ")]
for name, x in [("hook", hook)] + extra + [("git log", log), ("cat-file", cat)]:
    print(f"{name:9} mean {ms(x['mean'])} ± {ms(x['stddev'])}, median {ms(x['median'])}, "
          f"min {ms(x['min'])}; user {ms(x['user'])}, sys {ms(x['system'])}")
print(f"ratio hook / git log: mean {hook['mean'] / log['mean']:.2f}x, "
      f"median {hook['median'] / log['median']:.2f}x, min {hook['min'] / log['min']:.2f}x")
print(f"ratio cat-file / git log (mean): {cat['mean'] / log['mean']:.2f}x")
for name, x in [("hook", hook)] + extra:
    print(f"ratio {name} / cat-file (mean): {x['mean'] / cat['mean']:.2f}x")
print(f"targets: hook <= 300 ms: {'met' if hook['mean'] <= 0.3 else 'NOT met'} (mean); "
      f"hook <= 2x git log: {'met' if hook['mean'] <= 2 * log['mean'] else 'NOT met'} (means)")
PY
