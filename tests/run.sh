#!/usr/bin/env bash
# Installs what the test suite needs and runs it. CI (.ci/run) calls exactly this script, on a
# machine that may be new, so every prerequisite is installed here, not by hand.
#
# Prerequisites, each checked and installed before the tests run; a missing one is never a
# skipped test:
# - git;
# - Debian's docker-registry package: the CNCF distribution registry the registry tests start
#   on a loopback port (tests/common/registry.rs);
# - coreutils' `timeout`, which bounds every test registry's lifetime.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
  echo "tests/run.sh: cargo is missing; install the Rust toolchain (https://rustup.rs) and retry" >&2
  exit 2
fi
missing=()
need git || missing+=(git)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
need timeout || missing+=(coreutils)
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: need root to install ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 2
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# One build shared by every test target; --locked so CI builds exactly Cargo.lock.
cargo test --locked "$@"
