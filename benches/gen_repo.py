#!/usr/bin/env python3
"""Generate the deploy repository for the `tollgate hook pre-push` benchmark (issue 5).

Usage: python3 benches/gen_repo.py DIR

Writes a new git repository at DIR (which must not exist or be empty) with 10,000 commits on
`main`, built with one `git fast-import` stream (no `git commit` per commit), then repacked
(`git repack -adf`, as a clone would have it: one pack with deltas) and given a commit-graph
(as `git gc` would). Deterministic: fixed seed, stdlib only, fixed author dates.

- Commits 1-9,000 build up a GitOps deploy repository: manifests under
  `apps/<team>/<service>/<name>.yaml`, Helm values files under
  `helmfile.d/services/<service>/values*.yaml`, a README and docs. Each commit adds or edits 1-3
  files (mostly image bumps, sometimes replicas, env or resources).
- Commits 9,001-10,000 (the pushed range, HEAD~1000..HEAD) touch exactly 500 distinct manifests,
  1-3 per commit: 350 that exist at HEAD~1000 and 150 that the range adds. Nothing else changes
  in the range. At HEAD each of the 500 holds 4 workloads (Deployment, StatefulSet, DaemonSet,
  CronJob or Job; 2,000 resources) with 1-2 containers, ~1.6 KiB per resource. Images come from
  the default policy's registry, pinned `name:tag@sha256:...`, except ~2% that are denied
  (`docker.io/...:latest`, another registry) and ~4% without a digest (warn).

Prints `base <sha>`, `head <sha>` and a summary line.
"""

import hashlib
import os
import random
import subprocess
import sys

SEED = 20261205
BUILD_COMMITS, RANGE_COMMITS = 9000, 1000
RANGE_FILES, RANGE_NEW, OTHER_FILES = 500, 150, 200   # 350 range files exist at the base
DOCS_PER_RANGE_FILE = 4
DENY_RATE, NO_DIGEST_RATE = 0.02, 0.04

WMF = "docker-registry.wikimedia.org"
TEAMS = ["mediawiki", "search", "observability", "data-engineering", "machine-learning",
         "traffic", "sre", "fundraising"]
SERVICES = ["api", "parsoid", "eventgate", "thumbor", "mathoid", "citoid", "kask", "changeprop",
            "proton", "wikifeeds", "recommendation", "linkrecommendation", "termbox", "push"]
FILES = ["main", "canary", "jobs", "workers", "eqiad", "codfw", "staging", "batch"]
REPOS = ["wikimedia/mediawiki-multiversion", "envoy", "prometheus-statsd-exporter",
         "wikimedia/operations-software-thumbor-plugins", "httpd-fcgi", "php8.1-fpm",
         "repos/mediawiki/services/mathoid", "wikimedia/mediawiki-services-eventgate",
         "repos/data-engineering/airflow", "repos/search/cirrus-streaming-updater"]
WORKLOADS = ["Deployment", "Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job"]

rng = random.Random(SEED)
serial = 0   # every image bump gets a new version, so no file ever returns to an old content


def new_version():
    global serial
    serial += 1
    return f"2026-{serial % 12 + 1:02}-{serial % 28 + 1:02}-{100000 + serial}-production"


def new_container(name, bad_ok):
    r = rng.random() if bad_ok else 1.0
    return {"name": name, "repo": rng.choice(REPOS), "version": new_version(),
            "form": "deny" if r < DENY_RATE else "nodigest" if r < DENY_RATE + NO_DIGEST_RATE
            else "ok",
            "port": rng.choice([8080, 8081, 9102, 6379]),
            "env": [rng.randint(0, 10**6) for _ in range(rng.randint(1, 4))],
            "cpu": rng.randint(1, 20) * 50, "mem": rng.randint(1, 16) * 64}


def image(c):
    if c["form"] == "deny":
        # Denied: a Docker Hub `latest` or another registry (the same mistake in every version).
        serial_digit = c["version"].split("-")[3][-1]
        return (f"docker.io/library/{c['repo'].split('/')[-1]}:latest" if serial_digit in "02468"
                else f"quay.io/{c['repo']}:{c['version']}")
    ref = f"{WMF}/{c['repo']}:{c['version']}"
    if c["form"] == "nodigest":
        return ref
    return ref + "@sha256:" + hashlib.sha256(ref.encode()).hexdigest()


def new_doc(kind, name, bad_ok):
    return {"kind": kind, "name": name, "replicas": rng.randint(1, 10), "revision": 1,
            "schedule": f"{rng.randint(0, 59)} {rng.randint(0, 23)} * * *",
            "containers": [new_container(f"{name}-{i}", bad_ok)
                           for i in range(rng.choice([1, 1, 2]))]}


def new_manifest(path, in_range):
    svc = path.split("/")[2]
    name = f"{svc}-{os.path.splitext(os.path.basename(path))[0]}"
    if in_range:
        kinds = [rng.choice(WORKLOADS) for _ in range(DOCS_PER_RANGE_FILE)]
    else:
        kinds = [rng.choice(WORKLOADS + ["Service", "ConfigMap"]) for _ in range(rng.randint(1, 5))]
    return {"ns": path.split("/")[1], "docs": [new_doc(k, f"{name}-{i}", in_range)
                                               for i, k in enumerate(kinds)]}


def render_container(c, indent):
    p = " " * indent
    env = "".join(f"{p}    - name: ENV_{i}\n{p}      value: \"{v}\"\n" for i, v in enumerate(c["env"]))
    return (f"{p}- name: {c['name']}\n{p}  image: {image(c)}\n{p}  imagePullPolicy: IfNotPresent\n"
            f"{p}  env:\n{env}{p}  ports:\n{p}    - containerPort: {c['port']}\n"
            f"{p}      protocol: TCP\n{p}  livenessProbe:\n{p}    tcpSocket:\n"
            f"{p}      port: {c['port']}\n{p}  resources:\n{p}    requests:\n"
            f"{p}      cpu: {c['cpu']}m\n{p}      memory: {c['mem']}Mi\n{p}    limits:\n"
            f"{p}      memory: 2Gi\n{p}  volumeMounts:\n{p}    - name: config\n"
            f"{p}      mountPath: /etc/{c['name']}\n")


def render_doc(d, ns):
    kind, name = d["kind"], d["name"]
    api = {"CronJob": "batch/v1", "Job": "batch/v1", "Service": "v1", "ConfigMap": "v1"}.get(kind,
                                                                                        "apps/v1")
    head = (f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
            f"  labels:\n    app: {name}\n    app.kubernetes.io/managed-by: helmfile\n"
            f"    deploy-revision: \"{d['revision']}\"\n")
    if kind == "Service":
        return head + (f"spec:\n  type: ClusterIP\n  selector:\n    app: {name}\n  ports:\n"
                       f"    - name: http\n      port: 80\n      targetPort: 8080\n")
    if kind == "ConfigMap":
        return head + f"data:\n  replicas: \"{d['replicas']}\"\n  schedule: \"{d['schedule']}\"\n"

    def template(indent):
        p = " " * indent
        return (f"{p}template:\n{p}  metadata:\n{p}    labels:\n{p}      app: {name}\n"
                f"{p}  spec:\n{p}    serviceAccountName: {name}\n{p}    securityContext:\n"
                f"{p}      runAsNonRoot: true\n{p}    containers:\n"
                + "".join(render_container(c, indent + 6) for c in d["containers"])
                + f"{p}    volumes:\n{p}      - name: config\n{p}        configMap:\n"
                  f"{p}          name: {name}\n")

    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        return head + (f"spec:\n  replicas: {d['replicas']}\n  selector:\n    matchLabels:\n"
                       f"      app: {name}\n" + template(2))
    if kind == "Job":
        return head + "spec:\n  backoffLimit: 2\n" + template(2)
    return head + (f"spec:\n  schedule: \"{d['schedule']}\"\n  jobTemplate:\n    spec:\n"
                   + template(6))


def render_manifest(m):
    return "---\n".join(render_doc(d, m["ns"]) for d in m["docs"]).encode()


def edit_manifest(m):
    """One realistic change: an image bump (most), replicas, an env value or resources."""
    d = rng.choice(m["docs"])
    d["revision"] += 1   # every edit changes the file, whatever else it does
    r = rng.random()
    if r < 0.7 or not d["containers"]:
        for c in (d["containers"] if rng.random() < 0.5 else d["containers"][:1]):
            c["version"] = new_version()
        if not d["containers"]:
            d["replicas"] += 1
        return "bump image"
    c = rng.choice(d["containers"])
    if r < 0.8:
        d["replicas"] = d["replicas"] % 12 + 1
        d["schedule"] = f"{rng.randint(0, 59)} {rng.randint(0, 23)} * * *"
        return "scale"
    if r < 0.9:
        c["env"][rng.randrange(len(c["env"]))] = rng.randint(0, 10**6)
        return "change env"
    c["cpu"], c["mem"] = rng.randint(1, 20) * 50, rng.randint(1, 16) * 64
    return "tune resources"


def render_values(v):
    return (f"main_app:\n  image: {WMF}/{v['repo']}:{v['version']}\n  replicas: {v['replicas']}\n"
            f"  requests:\n    cpu: {v['cpu']}m\n    memory: {v['cpu'] * 2}Mi\n"
            f"service:\n  deployment: production\n  port:\n    targetPort: 8080\n"
            f"config:\n  public:\n    LOG_LEVEL: info\n    SERIAL: \"{v['serial']}\"\n").encode()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    if os.path.exists(root) and os.listdir(root):
        sys.exit(f"{root} exists and is not empty")
    subprocess.run(["git", "init", "-q", "-b", "main", root], check=True)
    git = lambda *a, **kw: subprocess.run(["git", "-C", root, *a], check=True, **kw)
    fi = subprocess.Popen(["git", "-C", root, "fast-import", "--quiet", "--done"],
                          stdin=subprocess.PIPE)
    out = fi.stdin

    # Which paths exist: 700 manifests (500 touched in the range: 350 from the base, 150 new),
    # values files for every service, the README and some docs.
    candidates = [f"apps/{t}/{s}/{f}.yaml" for t in TEAMS for s in SERVICES for f in FILES]
    rng.shuffle(candidates)
    range_old = candidates[:RANGE_FILES - RANGE_NEW]
    range_new = candidates[RANGE_FILES - RANGE_NEW:RANGE_FILES]
    other = candidates[RANGE_FILES:RANGE_FILES + OTHER_FILES]
    in_range = set(range_old) | set(range_new)
    values_paths = [f"helmfile.d/services/{s}-{t}/values{sfx}.yaml" for t in TEAMS for s in SERVICES
                    for sfx in ["", "-staging"]]
    docs = ["README.md", "docs/deploying.md", "docs/rollback.md", "docs/oncall.md"]
    to_create_build = range_old + other + values_paths + docs
    rng.shuffle(to_create_build)

    state = {}   # path -> manifest or values dict, or a counter for text files
    when = 1_704_067_200   # 2024-01-01T00:00:00Z
    mark = 0
    n_commits = 0

    def content(path):
        s = state[path]
        if path.startswith("apps/"):
            return render_manifest(s)
        if path.startswith("helmfile.d/"):
            return render_values(s)
        title = os.path.splitext(os.path.basename(path))[0]
        return (f"# {title}\n\n" + "".join(f"- note {i}: see the runbook, revision {i * 7 + 3}\n"
                                          for i in range(s))).encode()

    def create(path):
        if path.startswith("apps/"):
            state[path] = new_manifest(path, path in in_range)
        elif path.startswith("helmfile.d/"):
            state[path] = {"repo": rng.choice(REPOS), "version": new_version(),
                           "replicas": rng.randint(1, 20), "cpu": rng.randint(1, 20) * 50,
                           "serial": 0}
        else:
            state[path] = 1
        return "add"

    def edit(path):
        s = state[path]
        if path.startswith("apps/"):
            return edit_manifest(s)
        if path.startswith("helmfile.d/"):
            s["version"], s["serial"] = new_version(), s["serial"] + 1
            return "bump image"
        state[path] = s + 1
        return "update"

    def commit(paths):
        nonlocal when, mark, n_commits
        when += rng.randint(60, 4 * 3600)
        what = []
        for p in paths:
            what.append(create(p) if p not in state else edit(p))
        message = (f"{paths[0].rsplit('/', 1)[0]}: {what[0]}"
                   + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else "") + "\n").encode()
        n_commits += 1
        mark += 1
        buf = [f"commit refs/heads/main\nmark :{mark}\n"
               f"author Deployer {n_commits % 17} <deployer{n_commits % 17}@example.org> {when} +0000\n"
               f"committer Deployer {n_commits % 17} <deployer{n_commits % 17}@example.org> {when} +0000\n"
               f"data {len(message)}\n".encode(), message]
        if mark > 1:
            buf.append(f"from :{mark - 1}\n".encode())
        for p in paths:
            data = content(p)
            buf.append(f"M 100644 inline {p}\ndata {len(data)}\n".encode())
            buf.append(data)
            buf.append(b"\n")
        buf.append(b"\n")
        out.write(b"".join(buf))

    # The build-up: creations spread over the first ~2/3, edits of what exists meanwhile.
    existing = []
    pending = list(to_create_build)
    for i in range(BUILD_COMMITS):
        k = rng.choice([1, 1, 1, 2, 2, 3])
        paths = []
        for _ in range(k):
            left = BUILD_COMMITS * 2 // 3 - i
            if pending and (not existing or left <= len(pending) or rng.random() < len(pending) / left):
                paths.append(pending.pop())
            else:
                r = rng.random()
                pool = [p for p in existing if p.startswith("apps/")] if r < 0.8 else existing
                paths.append(rng.choice(pool))
        paths = list(dict.fromkeys(paths))
        commit(paths)
        existing.extend(p for p in paths if p not in existing)
    assert not pending, f"{len(pending)} files not created"
    out.write(b"checkpoint\n\n")

    # The pushed range: each of the 500 files at least once, 1-3 files per commit.
    ks = [rng.choice([1, 2, 2, 3]) for _ in range(RANGE_COMMITS)]
    touches = range_old + range_new
    rng.shuffle(touches)
    touches += [rng.choice(range_old + range_new) for _ in range(sum(ks) - len(touches))]
    head_tail = touches[:RANGE_FILES]
    rest = touches[RANGE_FILES:]
    rng.shuffle(rest)
    # Interleave so that the mandatory first touches are spread over the whole range.
    order = []
    for i, p in enumerate(head_tail):
        order.append(p)
        order.extend(rest[i * len(rest) // RANGE_FILES:(i + 1) * len(rest) // RANGE_FILES])
    pos = 0
    for k in ks:
        paths = list(dict.fromkeys(order[pos:pos + k]))
        pos += k
        commit(paths)
    assert pos == len(order)
    out.write(b"done\n")
    out.close()
    if fi.wait() != 0:
        sys.exit("git fast-import failed")

    git("reset", "-q", "--hard", "main")
    git("repack", "-adfq")
    git("prune-packed")
    git("commit-graph", "write", "--reachable", "--no-progress")
    rev = lambda r: subprocess.run(["git", "-C", root, "rev-parse", r], check=True,
                                   capture_output=True, text=True).stdout.strip()
    count = subprocess.run(["git", "-C", root, "rev-list", "--count", "main"], check=True,
                           capture_output=True, text=True).stdout.strip()
    base, head = rev(f"main~{RANGE_COMMITS}"), rev("main")
    resources = sum(len(state[p]["docs"]) for p in in_range)
    print(f"base {base}")
    print(f"head {head}")
    print(f"{count} commits; range {RANGE_COMMITS} commits touching {len(in_range)} manifests "
          f"({resources} resources, {RANGE_NEW} added in the range); "
          f"{sum(p.startswith('apps/') for p in state)} manifests and "
          f"{sum(p.startswith('helmfile.d/') for p in state)} values files at head")


if __name__ == "__main__":
    main()
