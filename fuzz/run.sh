#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `bash fuzz/run.sh [SECONDS_PER_TARGET]` (default
# 20; 0 builds and assembles the corpora without fuzzing, the start of the long runs in
# docs/FUZZING.md). tests/run.sh calls it, so it installs what it needs on a machine that has only
# the Rust toolchain, and exits non-zero when any target crashes, after running the others.
#
# - cargo-fuzz, from crates.io, is installed when missing. It passes -Z flags to cargo and
#   rustc, which a stable toolchain accepts only with RUSTC_BOOTSTRAP=1; no nightly is needed.
# - One build serves every target (fuzz/target, or $CARGO_TARGET_DIR): optimised, with debug
#   assertions and overflow checks (an overflow is a bug to find, not to wrap), and without
#   AddressSanitizer: src/ is safe Rust, where an out-of-bounds access already panics, so ASan
#   would slow every crate and every execution and find nothing more. 16 codegen units instead
#   of cargo-fuzz's 1: the build dominates a short run, and with one unit the tollgate crate,
#   compiled last, keeps one core of two busy.
# - Each target's corpus, fuzz/corpus/TARGET (git-ignored), starts from fuzz/seeds/TARGET, the
#   inputs in fuzz/regressions/TARGET and the repository's own files of that kind; what the
#   fuzzer finds is kept there for the next run. Crash inputs go to fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: fuzz/run.sh [SECONDS_PER_TARGET]   (a whole number, default 20)" >&2
  exit 2
fi

export RUSTC_BOOTSTRAP=1
# A panic prints where it happened before libFuzzer saves the input.
export RUST_BACKTRACE=1

CARGO_FUZZ_VERSION=0.13.2
need() { command -v "$1" >/dev/null 2>&1; }
if ! need c++; then
  # libfuzzer-sys compiles libFuzzer itself, which is C++.
  echo "fuzz/run.sh: installing g++ (libFuzzer is C++)" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz/run.sh: need root to install g++ (sudo apt-get install g++)" >&2
    exit 2
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# Absolute, so that cargo-fuzz and the runs below agree on where the binaries are.
target_dir="$(realpath -m "${CARGO_TARGET_DIR:-fuzz/target}")"
triple="$(rustc -vV | sed -n 's/^host: //p')"
build_flags=(--release --debug-assertions --sanitizer none --codegen-units 16
  --target "$triple" --target-dir "$target_dir")
bin_dir="$target_dir/$triple/release"

echo "fuzz/run.sh: cargo fuzz build ${build_flags[*]}" >&2
started=$SECONDS
cargo fuzz build "${build_flags[@]}"
echo "fuzz/run.sh: built in $((SECONDS - started)) s" >&2

mapfile -t targets < <(cargo fuzz list)

# Copy a file into a corpus under the name of its content, as libFuzzer names what it adds,
# so a seed copied again on the next run is not a second entry.
add() {
  local dir="$1" file="$2"
  cp "$file" "$dir/$(sha1sum <"$file" | cut -c1-40)"
}
add_text() {
  local dir="$1" text="$2" tmp
  tmp="$(mktemp)"
  printf '%s' "$text" >"$tmp"
  add "$dir" "$tmp"
  rm -f "$tmp"
}
add_files() {
  local dir="$1"
  shift
  local f
  while IFS= read -r -d '' f; do
    add "$dir" "$f"
  done < <(find "$@" -type f -print0 2>/dev/null)
}

# The repository's own inputs of each kind, beyond the hand-written seeds.
repo_inputs() {
  local target="$1" dir="$2" line
  case "$target" in
    reference)
      # Every image as written in a manifest or values file: the values of `image:` keys.
      while IFS= read -r line; do
        [ -n "$line" ] && add_text "$dir" "$line"
      done < <(grep -rhoE "\"?image\"?: *[\"']?[^\"' ,}]+" tests/fixtures examples charts \
        | sed -E "s/^\"?image\"?: *[\"']?//" | sort -u)
      ;;
    yaml)
      add_files "$dir" tests/fixtures examples/deploy-repo policies charts/tollgate/values.yaml \
        charts/tollgate/files
      ;;
    admission)
      add_files "$dir" tests/fixtures/admission
      ;;
    headers)
      # Docker-Content-Digest values: the digests the fixtures pin.
      while IFS= read -r line; do
        add_text "$dir" "$line"
      done < <(grep -rhoE 'sha(256|384|512):[0-9a-f]+' tests/fixtures examples | sort -u)
      ;;
    config)
      add_files "$dir" policies tests/fixtures/policies charts/tollgate/files
      ;;
  esac
}

failed=()
summary=()
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  log="fuzz/artifacts/$target.log"
  mkdir -p "$corpus" "$artifacts"
  [ -d "fuzz/seeds/$target" ] && add_files "$corpus" "fuzz/seeds/$target"
  [ -d "fuzz/regressions/$target" ] && add_files "$corpus" "fuzz/regressions/$target"
  repo_inputs "$target" "$corpus"
  # libFuzzer reads -max_total_time=0 as no limit, so 0 stops here.
  if [ "$seconds" -eq 0 ]; then
    summary+=("$target: corpus $(find "$corpus" -type f | wc -l), not run")
    continue
  fi

  echo "fuzz/run.sh: $target for $seconds s ($(find "$corpus" -type f | wc -l) inputs)" >&2
  rc=0
  # -timeout: one input running 30 s is a denial of service, and libFuzzer reports it as a
  # failure. Memory above -rss_limit_mb (2 GB by default) is one too.
  "$bin_dir/$target" "$corpus" \
    -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  if [ "$rc" -eq 0 ]; then
    summary+=("$target: ${runs:-?} runs, ${speed:-?}/s, corpus $(find "$corpus" -type f | wc -l)")
    continue
  fi
  failed+=("$target")
  summary+=("$target: FAILED (exit $rc)")
  echo "fuzz/run.sh: $target failed (exit $rc); the end of its log ($log):" >&2
  tail -n 60 "$log" >&2
  while IFS= read -r input; do
    echo "fuzz/run.sh: crash input: $input" >&2
    echo "  reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run ${build_flags[*]} $target $input" >&2
    echo "         or: $bin_dir/$target $input" >&2
  done < <(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")
done

printf 'fuzz/run.sh: %s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz/run.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
if [ "$seconds" -gt 0 ]; then
  echo "fuzz/run.sh: ${#targets[@]} targets ran ${seconds} s each without a crash" >&2
fi
