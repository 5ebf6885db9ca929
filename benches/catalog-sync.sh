#!/usr/bin/env bash
# Target (issue 15, "Speed"): a cold `tollgate catalog sync` of 500 images sharing 1,250 layers
# from a loopback registry fetches each manifest and config once and each layer at most once
# (tollgate sends no layer request at all: sizes come from the manifests); an incremental sync
# of the unchanged registry sends only the catalog, the tag lists and one HEAD per tag. The
# registry's own access log is the proof: requests are counted by method and kind from it and
# printed next to the expected counts, with the wall times. Results: docs/BENCHMARKS.md,
# "Catalog sync".
#
# What is pushed (python3, stdlib only, one keep-alive connection): 50 repositories `app-NN`,
# each with 10 tags; the images of one repository share a base of 5 layers, and each image has
# 2 layers of its own: 50 x 5 + 500 x 2 = 1,250 distinct layers, small random blobs. Each
# image has its own config (created time, labels, os/arch).
#
# Usage: bash benches/catalog-sync.sh
#   TOLLGATE=path/to/tollgate   use that binary (default: build --release and use it)
#   CATALOG=postgres://...      sync into that (empty) PostgreSQL database instead of a
#                               SQLite file in the temporary directory
# Needs Debian's docker-registry and python3. Everything it starts (the registry) is stopped,
# and its temporary directory removed, on exit, failure or interrupt.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ -x /usr/bin/docker-registry ]] || { echo "needs docker-registry (apt-get install docker-registry)" >&2; exit 2; }
command -v python3 > /dev/null || { echo "needs python3" >&2; exit 2; }

if [[ -z "${TOLLGATE:-}" ]]; then
  cargo build --release --locked --bin tollgate
  TOLLGATE=${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate
fi

work=$(mktemp -d)
registry_pid=
cleanup() {
  if [[ -n "$registry_pid" ]]; then
    kill -TERM "$registry_pid" 2> /dev/null || true
    wait "$registry_pid" 2> /dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
cat > "$work/config.yml" << EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $work/data
  delete:
    enabled: true
http:
  addr: $host
  secret: tollgate-bench
EOF
# distribution writes its combined-format access log to standard output.
/usr/bin/docker-registry serve "$work/config.yml" > "$work/access.log" 2> "$work/registry.err" &
registry_pid=$!
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://$host/v2/" 2> /dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "http://$host/v2/" || { echo "the registry did not start" >&2; cat "$work/registry.err" >&2; exit 2; }

echo "== pushing 500 images (50 repositories x 10 tags, 1,250 distinct layers) to $host"
start=$(date +%s.%N)
python3 - "$host" << 'PY'
import hashlib, http.client, json, random, sys

host = sys.argv[1]
conn = http.client.HTTPConnection(host)
rng = random.Random(15)

def call(method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, r.getheader("Location"), data

def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()

def blob(repo, data):
    d = sha(data)
    status, location, body = call("POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202, (status, body)
    sep = "&" if "?" in location else "?"
    path = location.split(host, 1)[-1]
    status, _, body = call("PUT", f"{path}{sep}digest={d}", data,
                           {"Content-Type": "application/octet-stream"})
    assert status == 201, (status, body)
    return d

def layer_bytes():
    return rng.randbytes(rng.randint(256, 1024))

for r in range(50):
    repo = f"app-{r:02d}"
    base = []
    for _ in range(5):
        data = layer_bytes()
        base.append((blob(repo, data), len(data)))
    for t in range(10):
        own = []
        for _ in range(2):
            data = layer_bytes()
            own.append((blob(repo, data), len(data)))
        layers = base + own
        config = json.dumps({
            "created": f"2024-01-{1 + t:02d}T00:00:00Z",
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.source": f"https://git.example.org/{repo}",
                                  "org.opencontainers.image.version": f"1.{t}"}},
            "rootfs": {"type": "layers", "diff_ids": [sha(d.encode()) for d, _ in layers]},
        }).encode()
        config_digest = blob(repo, config)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": d, "size": n} for d, n in layers],
        }).encode()
        status, _, body = call("PUT", f"/v2/{repo}/manifests/1.{t}", manifest,
                               {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert status == 201, (status, body)
PY
echo "pushed in $(echo "$(date +%s.%N) - $start" | bc) s"

catalog=${CATALOG:-sqlite:$work/catalog.db}
"$TOLLGATE" catalog migrate --catalog "$catalog" > /dev/null
policy=$work/policy.yaml
cat > "$policy" << EOF
apiVersion: tollgate.dev/v1alpha1
kind: Policy
metadata:
  name: bench
spec:
  registries:
    - prefix: $host
      insecure: true
EOF

# Requests since line $1 of the access log, by method and kind, as "METHOD kind count".
count_since() {
  # A request's line is written after its answer: a marker request, waited for, closes the run.
  local marker="/v2/bench-marker-$RANDOM/tags/list"
  curl -s -o /dev/null "http://$host$marker" || true
  for _ in $(seq 100); do
    grep -q "$marker" "$work/access.log" && break
    sleep 0.05
  done
  tail -n +"$(($1 + 1))" "$work/access.log" | grep -v 'bench-marker-' | awk -F'"' '
    { split($2, r, " "); m = r[1]; p = r[2];
      if (p ~ /^\/v2\/_catalog/) k = "catalog";
      else if (p ~ /\/tags\/list/) k = "tags";
      else if (p ~ /\/manifests\//) k = "manifest";
      else if (p ~ /\/blobs\//) k = "blob";
      else k = p;
      n[m " " k]++ }
    END { for (x in n) print x, n[x] }' | sort
}

lines() { wc -l < "$work/access.log"; }

# (kind, expected) pairs printed beside what the log counted.
report() {
  local counted=$1; shift
  printf '  %-16s %8s %8s\n' "request" "counted" "expected"
  while (($#)); do
    local got
    got=$(awk -v k="$1" '{ if ($1 " " $2 == k) print $3 }' <<< "$counted")
    printf '  %-16s %8s %8s\n' "$1" "${got:-0}" "$2"
    shift 2
  done
  local other
  other=$(grep -v -E '^(GET catalog|GET tags|HEAD manifest|GET manifest|GET blob|HEAD blob) ' <<< "$counted" || true)
  [[ -z "$other" ]] || { echo "  unexpected requests:"; sed 's/^/    /' <<< "$other"; }
}

sync_once() {
  local name=$1 before t0 t1
  before=$(lines)
  t0=$(date +%s.%N)
  "$TOLLGATE" catalog sync "$host" --catalog "$catalog" --policy "$policy" --format json > "$work/$name.json"
  t1=$(date +%s.%N)
  echo "== $name sync: $(echo "$t1 - $t0" | bc) s wall"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  report: %d repositories, %d tags, %d new manifests, %d errors, %d requests" % (r["repositories"], r["tags"], r["newManifests"], len(r["errors"]), r["requests"]))' "$work/$name.json"
  COUNTED=$(count_since "$before")
}

sync_once cold
report "$COUNTED" "GET catalog" 1 "GET tags" 50 "HEAD manifest" 500 "GET manifest" 500 "GET blob" 500 "HEAD blob" "0 (<= 1250)"
sync_once incremental
report "$COUNTED" "GET catalog" 1 "GET tags" 50 "HEAD manifest" 500 "GET manifest" 0 "GET blob" 0 "HEAD blob" 0
"$TOLLGATE" catalog status --catalog "$catalog"
