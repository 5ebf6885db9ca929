#!/usr/bin/env bash
# Target (issue 15): recording 10,000 pods takes at most 1 s, into SQLite and into PostgreSQL.
# Results: docs/BENCHMARKS.md, section 13.
#
# `tollgate catalog record --live-file` of a generated cluster: 500 Deployments in 25
# namespaces, each with a ReplicaSet and 20 pods of two containers (10,000 pods, 20,000
# containers, 1,000 runs). Three recordings, each timed on its own:
# - cold: every run is new (1,000 inserts);
# - same: the same state again (1,000 runs extended);
# - rollout: half the Deployments (250) on a new digest: 250 runs closed, 250 opened, 750
#   extended.
# Each is the whole command: start-up, reading and parsing the live file, the sightings, and the
# catalog's transaction. PostgreSQL is Debian's, started here on a free loopback port in a
# temporary directory as the unprivileged `postgres` user, durable (fsync and synchronous
# commit on, as a real one), and stopped on exit, also on failure or interrupt.
#
# Usage: bash benches/catalog-record.sh [BINARY]   (default: this tree's release build)
#   ROUNDS=N   repeat the three recordings N times on fresh catalogs (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}

if (($#)); then
  bin=$1
else
  cargo build --release --locked
  bin=${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate
fi
# shellcheck source=benches/postgres.sh
source benches/postgres.sh

work=$(mktemp -d)
cleanup() {
  [[ -z $pg_pid ]] || { kill -INT "$pg_pid" 2> /dev/null || true; wait "$pg_pid" 2> /dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The three live states.
python3 - "$work" << 'PY'
import json, sys
work = sys.argv[1]
def digest(d, rev):
    return "sha256:%064x" % (d * 16 + rev)
def state(rollout):
    items = []
    for d in range(500):
        ns, name = f"ns-{d % 25}", f"app-{d}"
        rev = 2 if rollout and d % 2 == 0 else 1
        rs = f"{name}-rs{rev}"
        items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": name, "namespace": ns, "uid": f"d-{d}"},
                      "spec": {"replicas": 20, "template": {"spec": {"containers": [
                          {"name": "app", "image": f"registry.example.org/team/{name}:v{rev}"},
                          {"name": "proxy", "image": "registry.example.org/base/envoy:1"}]}}}})
        items.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                      "metadata": {"name": rs, "namespace": ns, "uid": f"rs-{d}-{rev}",
                                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                        "name": name, "uid": f"d-{d}", "controller": True}]},
                      "spec": {"replicas": 20, "template": {"spec": {"containers": [
                          {"name": "app", "image": f"registry.example.org/team/{name}:v{rev}"},
                          {"name": "proxy", "image": "registry.example.org/base/envoy:1"}]}}}})
        for p in range(20):
            items.append({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": f"{rs}-{p}", "namespace": ns, "uid": f"p-{d}-{rev}-{p}",
                                       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                            "name": rs, "uid": f"rs-{d}-{rev}", "controller": True}]},
                          "spec": {"containers": [
                              {"name": "app", "image": f"registry.example.org/team/{name}:v{rev}"},
                              {"name": "proxy", "image": "registry.example.org/base/envoy:1"}]},
                          "status": {"phase": "Running", "containerStatuses": [
                              {"name": "app", "ready": True, "restartCount": 0,
                               "image": f"registry.example.org/team/{name}:v{rev}",
                               "imageID": f"registry.example.org/team/{name}@{digest(d, rev)}",
                               "state": {"running": {"startedAt": "2026-12-01T00:00:00Z"}}},
                              {"name": "proxy", "ready": True, "restartCount": 0,
                               "image": "registry.example.org/base/envoy:1",
                               "imageID": "registry.example.org/base/envoy@" + digest(9999, 1),
                               "state": {"running": {"startedAt": "2026-12-01T00:00:00Z"}}}]}})
    return {"apiVersion": "v1", "kind": "List", "items": items}
json.dump(state(False), open(f"{work}/live-1.json", "w"))
json.dump(state(True), open(f"{work}/live-2.json", "w"))
PY
echo "live state: $(du -h "$work/live-1.json" | cut -f1) of JSON, 10,000 pods, 20,000 containers, 500 Deployments"

# PostgreSQL, as tests/common/postgres.rs starts it, but durable.
start_postgres

TIMEFORMAT='%3R'
results=$work/results
for round in $(seq "$ROUNDS"); do
  "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -q -c "CREATE DATABASE r$round" > /dev/null
  for engine in sqlite postgres; do
    case $engine in
      sqlite) url="sqlite:$work/r$round.db" ;;
      postgres) url="postgres://postgres@127.0.0.1:$port/r$round" ;;
    esac
    "$bin" catalog migrate --catalog "$url" > /dev/null
    for step in cold:live-1 same:live-1 rollout:live-2; do
      name=${step%%:*} live=${step#*:}
      out=$work/out.json
      t=$({ time "$bin" catalog record --catalog "$url" --cluster bench --live-file "$work/$live.json" \
        --format json > "$out"; } 2>&1)
      echo "$engine $name $t" >> "$results"
      ((round == 1)) && echo "$engine $name: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print({k: v for k, v in d.items() if isinstance(v, (int, str)) and k != "schemaVersion"})' "$out")"
    done
  done
done

echo
echo "== $ROUNDS rounds, wall seconds of the whole command (target: at most 1 s)"
awk '{ k = $1 " " $2; n[k]++; s[k] += $3; if (!(k in min) || $3 < min[k]) min[k] = $3; if ($3 > max[k]) max[k] = $3 }
  END { for (k in n) printf "%-18s mean %.3f  min %.3f  max %.3f\n", k, s[k] / n[k], min[k], max[k] }' "$results" | sort
