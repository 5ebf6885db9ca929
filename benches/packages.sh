#!/usr/bin/env bash
# Targets (issue 16, "Speed"), measured in one run against Debian's docker-registry on a loopback
# port, with its access log on. Results: docs/BENCHMARKS.md, section 15.
#
# 1. Inventory of 500 images sharing one base: a cold `tollgate catalog sync REGISTRY
#    --packages` reads at most 1.1 x the bytes of the distinct layers. Measured from the
#    registry's own access log (combined format: the response size follows the status code):
#    the bytes sent for GETs of layer blobs, summed, against the sum of the distinct layers'
#    sizes. A second `catalog inventory` must read 0 layer bytes. Wall times of both.
#    The images (benches/gen_packages.py fleet): 50 repositories x 10 tags; a 3-layer Debian 12
#    base (os-release + this machine's real /var/lib/dpkg/status; ~20 MB compressed of varied
#    files; a small layer) and 1 small layer per image, every 5th also rewriting the status file
#    with one version changed: 3 + 500 = 503 distinct layers.
# 2. Layer scan throughput: >= 100 MB/s of compressed input per core. One image with a single
#    ~200 MB gzip layer (the files of /usr/share then /usr/lib of this machine, in sorted order,
#    up to 640 MB of content, then the status file and os-release at its end), pushed after a
#    plain sync; `catalog inventory` timed under /usr/bin/time (wall, user, sys, max RSS), and as
#    floors `gzip -dc LAYER > /dev/null` and `tar -xzO -f LAYER > /dev/null` of the same file.
#    MB = 10^6 bytes; MB/s per core = compressed bytes / (user + sys) CPU seconds.
# 3. Tracker import: `catalog import-advisories --tracker FILE` of a synthetic ~60 MB Debian
#    Security Tracker JSON export (benches/gen_packages.py tracker: the real shape, six releases
#    per CVE, the installed source packages among thousands of synthetic ones) in <= 5 s and
#    <= 500 MB max RSS, with `--release bookworm` and with all six `--release`s, each under
#    /usr/bin/time.
# 4. Needs-update query: `catalog security --format json` over the 500 images (after 1 and 3, on
#    the same catalog; exit 1 expected) in <= 100 ms: the median of 10 runs of the whole
#    command, so process start and opening the catalog included.
# Part 2 runs last so that parts 3 and 4 see exactly the 500 images of part 1.
#
# Usage: bash benches/packages.sh
#   TOLLGATE=path/to/tollgate   use that binary (default: build --release and use it)
#   CATALOG=postgres://...      use that (empty) PostgreSQL database instead of a SQLite file
#                               in the temporary directory
#   RUNS=N                      runs of part 4 (default 10)
#   KEEP=1                      keep the temporary directory (catalog, tracker, layers, logs)
# Needs Debian's docker-registry, python3, gzip, tar, curl and GNU time (/usr/bin/time), and
# about 2 GB in $TMPDIR. Everything it starts (the registry) is stopped, and its temporary
# directory removed, on exit, failure or interrupt.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in /usr/bin/docker-registry /usr/bin/time; do
  [[ -x $tool ]] || { echo "needs $tool (apt-get install docker-registry time)" >&2; exit 2; }
done
for tool in python3 gzip tar curl; do
  command -v "$tool" > /dev/null || { echo "needs $tool" >&2; exit 2; }
done
[[ -r /var/lib/dpkg/status ]] || { echo "needs this machine's /var/lib/dpkg/status" >&2; exit 2; }

if [[ -z "${TOLLGATE:-}" ]]; then
  cargo build --release --locked --bin tollgate
  TOLLGATE=${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate
fi
gen="python3 $PWD/benches/gen_packages.py"
runs=${RUNS:-10}

work=$(mktemp -d)
registry_pid=
cleanup() {
  if [[ -n "$registry_pid" ]]; then
    kill -TERM "$registry_pid" 2> /dev/null || true
    wait "$registry_pid" 2> /dev/null || true
  fi
  if [[ -n "${KEEP:-}" ]]; then echo "kept $work (catalog, tracker, layers, access log)" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM

echo "== tollgate $("$TOLLGATE" --version 2>&1 | head -1), tree $(git rev-parse --short HEAD 2> /dev/null || echo '?'), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"

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

lines() { wc -l < "$work/access.log"; }

# Wait until every request sent so far is in the access log (a line is written after its
# answer): a marker request, waited for.
settle() {
  local marker="/v2/bench-marker-$RANDOM$RANDOM/tags/list"
  curl -s -o /dev/null "http://$host$marker" || true
  for _ in $(seq 100); do
    grep -q "$marker" "$work/access.log" && break
    sleep 0.05
  done
}

# Layer blob GETs since line $1 of the access log: "GETS BYTES" (layers = the digests in $2).
layer_bytes_since() {
  settle
  tail -n +"$(($1 + 1))" "$work/access.log" | awk -F'"' -v layers="$2" '
    BEGIN { while ((getline line < layers) > 0) { split(line, f, " "); want[f[1]] = 1 } }
    { split($2, r, " "); if (r[1] != "GET" || r[2] !~ /\/blobs\/sha256:/) next;
      d = r[2]; sub(/.*\/blobs\//, "", d); sub(/\?.*/, "", d);
      if (!(d in want)) next;
      split($3, s, " "); n++; b += (s[2] == "-" ? 0 : s[2]) }
    END { printf "%d %d\n", n, b }'
}

# Run "$@" under GNU time; sets T_WALL T_USER T_SYS T_RSS (KB) and RC.
timed() {
  local out=$1; shift
  RC=0
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" > "$out" 2> "$work/$(basename "$out").err" || RC=$?
  read -r T_WALL T_USER T_SYS T_RSS < <(tail -1 "$work/time")
}

calc() { python3 -c "print($1)"; }

fail() {
  echo "FAILED (exit $RC): $*" >&2
  sed 's/^/  /' "$work/$(basename "$2").err" >&2 || true
  exit 1
}

# -------------------------------------------------------------------------------------- part 1
echo "== part 1: pushing 500 images (50 repositories x 10 tags, a 3-layer base + 1 layer each) to $host"
t0=$(date +%s.%N)
$gen fleet "$host" /var/lib/dpkg/status "$work/layers.txt"
echo "  pushed in $(calc "round($(date +%s.%N) - $t0, 1)") s"
distinct_n=$(wc -l < "$work/layers.txt")
distinct_b=$(awk '{ s += $2 } END { print s }' "$work/layers.txt")

before=$(lines)
timed "$work/cold.json" "$TOLLGATE" catalog sync "$host" --catalog "$catalog" --policy "$policy" --packages --format json
[[ $RC == 0 ]] || fail "catalog sync --packages" "$work/cold.json"
read -r cold_gets cold_bytes < <(layer_bytes_since "$before" "$work/layers.txt")
cold_wall=$T_WALL cold_cpu=$(calc "round($T_USER + $T_SYS, 2)") cold_rss=$T_RSS
echo "  cold sync --packages: $cold_wall s wall, $cold_cpu s CPU, $cold_rss KB max RSS"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); p=r["packages"]; print("  report: %d tags, %d new manifests, %d sync errors; packages: %d pending, %d inventoried (%d with dpkg), %d layers read (%d bytes), %d known, %d unreadable, %d errors, %d requests" % (r["tags"], r["newManifests"], len(r["errors"]), p["pending"], p["inventoried"], p["withDpkg"], p["layersRead"], p["bytesRead"], p["layersKnown"], p["layersUnreadable"], len(p["errors"]), p["requests"]))' "$work/cold.json"

before=$(lines)
timed "$work/again.json" "$TOLLGATE" catalog inventory --catalog "$catalog" --policy "$policy" --format json
[[ $RC == 0 ]] || fail "catalog inventory (again)" "$work/again.json"
read -r again_gets again_bytes < <(layer_bytes_since "$before" "$work/layers.txt")
again_wall=$T_WALL
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print("  inventory again: %d pending, %d layers read (%d bytes), %d requests" % (p["pending"], p["layersRead"], p["bytesRead"], p["requests"]))' "$work/again.json"

ratio=$(calc "round($cold_bytes / $distinct_b, 4)")
verdict1=$(calc "'met' if $cold_bytes <= 1.1 * $distinct_b and $again_bytes == 0 else 'not met'")
printf '  %-44s %18s %18s\n' "" "measured" "target"
printf '  %-44s %18s %18s\n' "distinct layers (count / bytes)" "$distinct_n / $distinct_b" ""
printf '  %-44s %18s %18s\n' "cold: layer GETs / bytes sent (access log)" "$cold_gets / $cold_bytes" "<= $(calc "int(1.1 * $distinct_b)")"
printf '  %-44s %18s %18s\n' "cold: bytes sent / distinct layers' bytes" "$ratio" "<= 1.1"
printf '  %-44s %18s %18s\n' "again: layer GETs / bytes sent" "$again_gets / $again_bytes" "0"
printf '  %-44s %18s\n' "cold sync --packages wall (s)" "$cold_wall"
printf '  %-44s %18s\n' "inventory again wall (s)" "$again_wall"
echo "  verdict: $verdict1"

# -------------------------------------------------------------------------------------- part 3
echo "== part 3: tracker import"
t0=$(date +%s.%N)
$gen tracker /var/lib/dpkg/status "$work/tracker.json" 60 | sed 's/^/  generated: /'
echo "  generated in $(calc "round($(date +%s.%N) - $t0, 1)") s"
tracker_mb=$(calc "round($(stat -c %s "$work/tracker.json") / 1e6, 1)")
declare -A imp_wall imp_rss imp_cpu
for which in bookworm all; do
  if [[ $which == bookworm ]]; then
    rel=(--release bookworm)
  else
    rel=(--release buster --release bullseye --release bookworm --release trixie --release forky --release sid)
  fi
  timed "$work/import-$which.json" "$TOLLGATE" catalog import-advisories --tracker "$work/tracker.json" "${rel[@]}" --catalog "$catalog" --format json
  [[ $RC == 0 ]] || fail "catalog import-advisories ${rel[*]}" "$work/import-$which.json"
  imp_wall[$which]=$T_WALL imp_rss[$which]=$T_RSS imp_cpu[$which]=$(calc "round($T_USER + $T_SYS, 2)")
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  %s: %d advisories for %s, %d errors" % (sys.argv[2], r["advisories"], ",".join(r["releases"]), len(r["errors"])))' "$work/import-$which.json" "$which"
done
# The catalog is left with bookworm's advisories only, as a catalog of bookworm images would hold.
timed "$work/import-last.json" "$TOLLGATE" catalog import-advisories --tracker "$work/tracker.json" --release bookworm --catalog "$catalog" --format json
[[ $RC == 0 ]] || fail "catalog import-advisories --release bookworm (again)" "$work/import-last.json"
echo "  bookworm again (what part 4 queries): ${T_WALL} s, ${T_RSS} KB"
verdict3=$(calc "'met' if max(${imp_wall[bookworm]}, ${imp_wall[all]}) <= 5 and max(${imp_rss[bookworm]}, ${imp_rss[all]}) <= 500 * 1024 else 'not met'")
printf '  %-30s %10s %10s %12s %14s\n' "import of $tracker_mb MB" "wall (s)" "CPU (s)" "max RSS (MB)" "target"
for which in bookworm all; do
  printf '  %-30s %10s %10s %12s %14s\n' "--release $which" "${imp_wall[$which]}" "${imp_cpu[$which]}" "$(calc "round(${imp_rss[$which]} / 1024, 1)")" "<= 5 s, 500 MB"
done
echo "  verdict: $verdict3"

# -------------------------------------------------------------------------------------- part 4
echo "== part 4: catalog security --format json over 500 images, $runs runs"
python3 - "$TOLLGATE" "$catalog" "$runs" "$work/security.json" > "$work/part4" << 'PY'
import json, statistics, subprocess, sys, time
tollgate, catalog, runs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
times = []
for i in range(runs + 1):
    t0 = time.perf_counter()
    p = subprocess.run([tollgate, "catalog", "security", "--format", "json", "--catalog", catalog],
                       capture_output=True)
    t = time.perf_counter() - t0
    if p.returncode != 1:
        sys.exit(f"catalog security exited {p.returncode}, expected 1: {p.stderr.decode()}")
    if i == 0:
        open(out, "wb").write(p.stdout)  # the first run warms the page cache, not counted
    else:
        times.append(t * 1000)
print(" ".join(f"{t:.1f}" for t in times))
print(f"{statistics.median(times):.1f} {min(times):.1f} {max(times):.1f}")
PY
read -r -a sec_all < <(sed -n 1p "$work/part4")
read -r sec_med sec_min sec_max < <(sed -n 2p "$work/part4")
echo "  runs (ms): ${sec_all[*]}"
python3 - "$work/security.json" << 'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def show(k, v):
    if isinstance(v, (int, float, str, bool)) or v is None:
        return f"{k}={v}"
    return f"{k}: {len(v)} entries"
print("  report:", "; ".join(show(k, v) for k, v in r.items()))
PY
verdict4=$(calc "'met' if $sec_med <= 100 else 'not met'")
echo "  median $sec_med ms (min $sec_min, max $sec_max), target <= 100 ms, process start and opening the catalog included"
echo "  verdict: $verdict4"

# -------------------------------------------------------------------------------------- part 2
echo "== part 2: one image with a single ~200 MB gzip layer"
t0=$(date +%s.%N)
$gen big-layer /var/lib/dpkg/status "$work/big.tar.gz" 640 | sed 's/^/  layer: /'
echo "  built in $(calc "round($(date +%s.%N) - $t0, 1)") s"
big_b=$(stat -c %s "$work/big.tar.gz")
big_mb=$(calc "round($big_b / 1e6, 1)")
$gen push-big "$host" "$work/big.tar.gz" big 1.0 | sed 's/^/  /'
big_digest=sha256:$(sha256sum "$work/big.tar.gz" | cut -d' ' -f1)
echo "$big_digest $big_b" > "$work/big-layer.txt"
"$TOLLGATE" catalog sync "$host" --catalog "$catalog" --policy "$policy" --format json > "$work/sync-big.json"

before=$(lines)
timed "$work/inv-big.json" "$TOLLGATE" catalog inventory --catalog "$catalog" --policy "$policy" --format json
[[ $RC == 0 ]] || fail "catalog inventory (big layer)" "$work/inv-big.json"
read -r big_gets big_sent < <(layer_bytes_since "$before" "$work/big-layer.txt")
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print("  inventory: %d pending, %d inventoried (%d with dpkg), %d layers read (%d bytes), %d errors" % (p["pending"], p["inventoried"], p["withDpkg"], p["layersRead"], p["bytesRead"], len(p["errors"])))' "$work/inv-big.json"
echo "  access log: $big_gets GET(s) of the layer, $big_sent bytes sent"
"$TOLLGATE" catalog packages "$host/big:1.0" --catalog "$catalog" --format json > "$work/big-packages.json" \
  && python3 -c 'import json,sys; t=open(sys.argv[1]).read(); print("  catalog packages big:1.0: %d bytes of JSON, mentions dpkg packages: %s" % (len(t), "\"libc6\"" in t))' "$work/big-packages.json" \
  || echo "  catalog packages big:1.0 failed: $(cat "$work/big-packages.json")"
declare -A s_wall s_cpu s_rss
s_wall[tollgate]=$T_WALL s_cpu[tollgate]=$(calc "round($T_USER + $T_SYS, 2)") s_rss[tollgate]=$T_RSS
timed /dev/null gzip -dc "$work/big.tar.gz"
s_wall[gzip]=$T_WALL s_cpu[gzip]=$(calc "round($T_USER + $T_SYS, 2)") s_rss[gzip]=$T_RSS
timed /dev/null tar -xzO -f "$work/big.tar.gz"
s_wall[tar]=$T_WALL s_cpu[tar]=$(calc "round($T_USER + $T_SYS, 2)") s_rss[tar]=$T_RSS
printf '  %-38s %9s %9s %10s %16s %13s %11s\n' "$big_mb MB compressed" "wall (s)" "CPU (s)" "cores used" "MB/s (wall)" "MB/s per core" "max RSS MB"
for k in tollgate gzip tar; do
  case $k in
    tollgate) label="tollgate catalog inventory" ;;
    gzip) label="gzip -dc LAYER > /dev/null" ;;
    tar) label="tar -xzO -f LAYER > /dev/null" ;;
  esac
  printf '  %-38s %9s %9s %10s %16s %13s %11s\n' "$label" "${s_wall[$k]}" "${s_cpu[$k]}" \
    "$(calc "round(${s_cpu[$k]} / max(${s_wall[$k]}, 0.01), 2)")" \
    "$(calc "round($big_b / 1e6 / max(${s_wall[$k]}, 0.01), 1)")" \
    "$(calc "round($big_b / 1e6 / max(${s_cpu[$k]}, 0.01), 1)")" \
    "$(calc "round(${s_rss[$k]} / 1024, 1)")"
done
verdict2=$(calc "'met' if $big_b / 1e6 / max(${s_cpu[tollgate]}, 0.01) >= 100 else 'not met'")
echo "  verdict (>= 100 MB/s of compressed input per core, tollgate): $verdict2"

echo "== summary"
echo "  1. inventory bytes: $cold_bytes sent for $distinct_b distinct (x$ratio, <= 1.1), again $again_bytes: $verdict1"
echo "  2. layer scan: $(calc "round($big_b / 1e6 / max(${s_cpu[tollgate]}, 0.01), 1)") MB/s per core (>= 100): $verdict2"
echo "  3. tracker import: ${imp_wall[bookworm]} s / ${imp_rss[bookworm]} KB (bookworm), ${imp_wall[all]} s / ${imp_rss[all]} KB (six) (<= 5 s, 500 MB): $verdict3"
echo "  4. needs-update query: median $sec_med ms (<= 100): $verdict4"
