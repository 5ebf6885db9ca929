#!/bin/sh
# tollgate in any CI system, as one shell step: check a change against the branch it will be
# merged into, write the reports for the CI system to keep, and fail on violations.
# tests/it/ci_examples.rs runs this script on a real history (docs/git-gates.md, `tollgate ci`).
#
#   TOLLGATE_BASE     the branch the change will be merged into (default origin/main); it and
#                     the merge base must be in the clone (fetch with full history)
#   TOLLGATE_REPORTS  where the reports go (default tollgate-reports)
#
# Exit 0: no deny-level finding (warnings are shown); 1: deny-level findings; 2: a file that
# cannot be checked, or a base that is not in the clone.
set -u
base="${TOLLGATE_BASE:-origin/main}"
reports="${TOLLGATE_REPORTS:-tollgate-reports}"
mkdir -p "$reports"

# The reports, for the CI system's test and code-scanning views; their verdict is the last line's.
tollgate ci --base "$base" --format junit > "$reports/tollgate.xml" || true
tollgate ci --base "$base" --format sarif > "$reports/tollgate.sarif" || true
tollgate ci --base "$base" --format json > "$reports/tollgate.json" || true

# The report in the log, and the verdict.
exec tollgate ci --base "$base"
