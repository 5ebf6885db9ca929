#!/usr/bin/env bash
# Target (issue 15): at 1,000,000 run rows, "where does digest D run" and "what ran in
# namespace N at time T" take at most 10 ms each, with the query plans shown. Results:
# docs/BENCHMARKS.md, section 14.
#
# The schema is made by the binary's `catalog migrate`; the rows are generated in SQL: 4 clusters,
# 50 namespaces, 5,000 (controller, container) slots, each with 200 consecutive intervals over
# about a year (1,000,000 runs; the last interval of each slot still open; each digest runs in
# the 4 clusters at once, so D has 4 rows). The two statements are the ones src/catalog/runs.rs
# sends (`runs_of_digest`, `running_at` with a namespace), timed inside each engine (sqlite3's
# `.timer`, psql's `\timing`): the query, not process start-up. PostgreSQL is Debian's, started
# here on a free loopback port as the unprivileged `postgres` user and stopped on exit.
#
# Usage: bash benches/catalog-queries.sh [BINARY]   (default: this tree's release build)
#   REPEAT=N   runs of each query per engine (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-20}

if (($#)); then
  bin=$1
else
  cargo build --release --locked
  bin=${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate
fi
# shellcheck source=benches/postgres.sh
source benches/postgres.sh
command -v sqlite3 > /dev/null || { echo "needs sqlite3: apt-get install -y sqlite3" >&2; exit 2; }

work=$(mktemp -d)
cleanup() {
  [[ -z $pg_pid ]] || { kill -INT "$pg_pid" 2> /dev/null || true; wait "$pg_pid" 2> /dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_postgres
psql=("$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -q -X -v ON_ERROR_STOP=1)
"${psql[@]}" -c "CREATE DATABASE bench" > /dev/null
pg_url="postgres://postgres@127.0.0.1:$port/bench"
sqlite_db=$work/catalog.db
"$bin" catalog migrate --catalog "$pg_url" > /dev/null
"$bin" catalog migrate --catalog "sqlite:$sqlite_db" > /dev/null

T0=1700000000
# slot = g % 5000, k = g / 5000; interval k of a slot: [T0 + k*157680, +86400], closed 600 s
# later except the last; digest (slot / 4, k), so one digest runs in all 4 clusters.
clusters="INSERT INTO clusters (name, last_recorded_at) VALUES ('c1', 0), ('c2', 0), ('c3', 0), ('c4', 0);"
echo "filling 1,000,000 runs into each engine"
sqlite3 "$sqlite_db" "$clusters
WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < 999999)
INSERT INTO runs (cluster_id, namespace, controller_kind, controller_name, container, image, digest,
                  pod_count, first_seen, last_seen, closed_at)
SELECT 1 + (n % 5000) % 4, 'ns-' || ((n % 5000) % 50), 'Deployment', 'app-' || ((n % 5000) / 4), 'app',
       'registry.example.org/team/app-' || ((n % 5000) / 4),
       printf('sha256:%064x', ((n % 5000) / 4) * 200 + n / 5000), 3,
       $T0 + (n / 5000) * 157680, $T0 + (n / 5000) * 157680 + 86400,
       CASE WHEN n / 5000 = 199 THEN NULL ELSE $T0 + (n / 5000) * 157680 + 87000 END
FROM g;
ANALYZE;"
"${psql[@]}" -d bench -c "$clusters
INSERT INTO runs (cluster_id, namespace, controller_kind, controller_name, container, image, digest,
                  pod_count, first_seen, last_seen, closed_at)
SELECT 1 + (n % 5000) % 4, 'ns-' || ((n % 5000) % 50), 'Deployment', 'app-' || ((n % 5000) / 4), 'app',
       'registry.example.org/team/app-' || ((n % 5000) / 4),
       'sha256:' || lpad(to_hex(((n % 5000) / 4) * 200 + n / 5000), 64, '0'), 3,
       $T0 + (n / 5000) * 157680, $T0 + (n / 5000) * 157680 + 86400,
       CASE WHEN n / 5000 = 199 THEN NULL ELSE $T0 + (n / 5000) * 157680 + 87000 END
FROM generate_series(0, 999999) n;
ANALYZE;" > /dev/null
echo "rows: sqlite $(sqlite3 "$sqlite_db" 'SELECT COUNT(*) FROM runs'), postgres $("${psql[@]}" -d bench -tAc 'SELECT COUNT(*) FROM runs')"

# A digest in the middle of the history, and a time in the middle of the year.
digest_hex=$(printf '%064x' $((600 * 200 + 100)))
d="sha256:$digest_hex"
t=$((T0 + 100 * 157680 + 40000))
cols="c.name, r.namespace, r.controller_kind, r.controller_name, r.container, r.image, r.digest, r.pod_count, r.first_seen, r.last_seen, r.closed_at"
q_digest="SELECT $cols FROM runs r JOIN clusters c ON c.id = r.cluster_id WHERE r.digest = '$d' ORDER BY r.first_seen, c.name, r.namespace, r.controller_kind, r.controller_name, r.container"
q_ns="SELECT $cols FROM runs r JOIN clusters c ON c.id = r.cluster_id WHERE r.last_seen >= $t AND r.first_seen <= $t AND r.namespace = 'ns-7' ORDER BY c.name, r.namespace, r.controller_kind, r.controller_name, r.container, r.digest"

for q in digest ns; do
  var=q_$q
  sql=${!var}
  echo
  echo "== query $q: $(sqlite3 "$sqlite_db" "SELECT COUNT(*) FROM ($sql)") rows"
  echo "-- sqlite plan:"
  sqlite3 "$sqlite_db" "EXPLAIN QUERY PLAN $sql" | sed 's/^/   /'
  echo "-- postgres plan:"
  "${psql[@]}" -d bench -c "EXPLAIN (ANALYZE, BUFFERS) $sql" | sed 's/^/   /'
  { echo ".timer on"; for _ in $(seq "$REPEAT"); do echo "$sql;"; done; } \
    | sqlite3 "$sqlite_db" | sed -n 's/^Run Time: real \([0-9.]*\).*/\1/p' > "$work/sqlite-$q"
  { echo '\timing on'; for _ in $(seq "$REPEAT"); do echo "$sql;"; done; } \
    | "${psql[@]}" -d bench -o /dev/null 2>&1 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' > "$work/pg-$q"
  python3 - "$q" "$work/sqlite-$q" "$work/pg-$q" << 'PY'
import statistics, sys
q, s, p = sys.argv[1:]
sq = sorted(1000 * float(x) for x in open(s))
pq = sorted(float(x) for x in open(p))
for name, v in (("sqlite", sq), ("postgres", pq)):
    print(f"{q:7} {name:9} median {statistics.median(v):7.3f} ms  min {v[0]:7.3f} ms  max {v[-1]:7.3f} ms  ({len(v)} runs; target <= 10 ms)")
PY
done
