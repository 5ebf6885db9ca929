#!/usr/bin/env python3
"""Generate the deploy repository and live state for the `tollgate rollout` benchmark (issue 6).

Usage: python3 benches/gen_rollout.py DIR

Writes a new git repository at DIR with 10,000 commits on `main` (one `git fast-import` stream,
then `git repack -adf` and a commit-graph, as a clone would have it) declaring 200 workloads, one
manifest each (`apps/<team>/<name>.yaml`), and DIR/live.json (a `kubectl get -o json` List).
Each commit bumps the image of one workload (9 in 10) or edits a README (1 in 10).
Live state: 150 workloads run the head's images; 45 are 1-5 bumps behind; 5 still run their
first version, so history is walked back nearly to the root commit for them (the worst case).
Deterministic: fixed seed, stdlib only, fixed dates. Prints a summary line.
"""

import json
import os
import random
import subprocess
import sys

SEED = 20261121
COMMITS, WORKLOADS = 10_000, 200
IN_SYNC, FAR_BEHIND = 150, 5
REG = "docker-registry.wikimedia.org"
TEAMS = ["mediawiki", "search", "observability", "data-engineering", "traffic", "sre"]
START = 1_700_000_000

rng = random.Random(SEED)
names = [(TEAMS[i % len(TEAMS)], f"svc-{i:03}") for i in range(WORKLOADS)]


def manifest(team, name, version):
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n"
            f"  namespace: {team}\nspec:\n  replicas: 3\n  template:\n    spec:\n"
            f"      containers:\n        - name: app\n          image: {REG}/{team}/{name}:1.0.{version}\n"
            f"          resources: {{requests: {{cpu: 100m, memory: 256Mi}}}}\n"
            f"        - name: envoy\n          image: {REG}/envoy:1.30.2\n")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=False)
    subprocess.run(["git", "init", "-q", "-b", "main", out], check=True)
    history = [[0] for _ in range(WORKLOADS)]   # versions each workload had, in order
    stream = []

    def commit(i, message, files):
        when = START + i * 600
        data = message.encode()
        stream.append(f"commit refs/heads/main\nmark :{i + 1}\n"
                      f"author Dev <dev@example.org> {when} +0000\n"
                      f"committer Dev <dev@example.org> {when} +0000\n"
                      f"data {len(data)}\n".encode() + data + b"\n")
        if i > 0:
            stream.append(f"from :{i}\n".encode())
        for path, text in files:
            blob = text.encode()
            stream.append(f"M 100644 inline {path}\ndata {len(blob)}\n".encode() + blob + b"\n")
        stream.append(b"\n")

    commit(0, "initial", [("README.md", "deploy repo\n")] +
           [(f"apps/{t}/{n}.yaml", manifest(t, n, 0)) for t, n in names])
    for i in range(1, COMMITS):
        if rng.random() < 0.1:
            commit(i, f"docs {i}", [("README.md", f"deploy repo, revision {i}\n")])
            continue
        w = rng.randrange(WORKLOADS)
        version = history[w][-1] + 1
        history[w].append(version)
        t, n = names[w]
        commit(i, f"{n}: deploy 1.0.{version}", [(f"apps/{t}/{n}.yaml", manifest(t, n, version))])
    subprocess.run(["git", "-C", out, "fast-import", "--quiet"], input=b"".join(stream), check=True)
    subprocess.run(["git", "-C", out, "reset", "-q", "--hard", "main"], check=True)
    subprocess.run(["git", "-C", out, "repack", "-adfq"], check=True)
    subprocess.run(["git", "-C", out, "commit-graph", "write", "--reachable"], check=True)

    order = list(range(WORKLOADS))
    rng.shuffle(order)
    items, behind = [], 0
    for rank, w in enumerate(order):
        versions = history[w]
        if rank < IN_SYNC or len(versions) < 2:
            live = versions[-1]
        elif rank < WORKLOADS - FAR_BEHIND:
            live = versions[max(0, len(versions) - 1 - rng.randint(1, 5))]
        else:
            live = versions[0]
        behind += live != versions[-1]
        t, n = names[w]
        items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": n, "namespace": t},
                      "spec": {"replicas": 3, "template": {"spec": {"containers": [
                          {"name": "app", "image": f"{REG}/{t}/{n}:1.0.{live}"},
                          {"name": "envoy", "image": f"{REG}/envoy:1.30.2"}]}}}})
    with open(os.path.join(out, ".git", "live.json"), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    print(f"{COMMITS} commits, {WORKLOADS} workloads, {behind} behind "
          f"({FAR_BEHIND} since their first version); live state in {out}/.git/live.json")


main()
