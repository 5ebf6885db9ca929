#!/usr/bin/env bash
# Installs what the test suite needs and runs it. CI (.ci/run) calls exactly this script, on a
# machine that may be new, so every prerequisite is installed here, not by hand.
#
# Today the suite needs only the Rust toolchain. Later issues add their prerequisites here (the
# CNCF distribution registry from Debian's docker-registry package, git), each checked and
# installed before the tests run, never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
  echo "tests/run.sh: cargo is missing; install the Rust toolchain (https://rustup.rs) and retry" >&2
  exit 2
fi
if ! need git; then
  echo "tests/run.sh: installing git" >&2
  apt-get update -qq && apt-get install -y -qq git >/dev/null
fi

# One build shared by every test target; --locked so CI builds exactly Cargo.lock.
cargo test --locked "$@"
