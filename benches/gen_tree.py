#!/usr/bin/env python3
"""Generate the benchmark manifest tree: 500 files holding exactly 2,000 Kubernetes resources.

Usage: python3 benches/gen_tree.py DIR

Deterministic (fixed seed, stdlib only), so every run and every machine checks the same bytes.
The layout mimics a GitOps repository: 25 service directories x 20 multi-document YAML files,
1 to 8 resources per file; workloads of every kind tollgate extracts plus Services and
ConfigMaps, which it must parse and then skip. About 70% of images comply with the default
policy; the rest use another registry, `latest`, no tag, or a tag without a digest.
"""

import hashlib
import os
import random
import sys

DIRS, FILES_PER_DIR, RESOURCES = 25, 20, 2000
SEED = 20261121

WMF = "docker-registry.wikimedia.org"
REPOS = ["wikimedia/mediawiki-multiversion", "envoy", "prometheus-statsd-exporter",
         "wikimedia/operations-software-thumbor-plugins", "httpd-fcgi", "php8.1-fpm",
         "repos/mediawiki/services/mathoid", "wikimedia/mediawiki-services-eventgate"]
# Kinds and their weights: workloads first, then objects without a pod spec (skipped).
KINDS = [("Deployment", 35), ("StatefulSet", 8), ("DaemonSet", 5), ("CronJob", 7), ("Job", 5),
         ("Pod", 5), ("Service", 20), ("ConfigMap", 15)]

rng = random.Random(SEED)


def image():
    repo, tag = rng.choice(REPOS), f"2026-{rng.randint(1, 11):02}-{rng.randint(1, 28):02}-1"
    digest = "sha256:" + hashlib.sha256(f"{repo}:{tag}".encode()).hexdigest()
    r = rng.random()
    if r < 0.60:
        return f"{WMF}/{repo}:{tag}@{digest}"                         # compliant
    if r < 0.70:
        return f"docker-registry.discovery.wmnet/{repo}:{tag}@{digest}"  # compliant (alias)
    if r < 0.80:
        return f"{WMF}/{repo}:{tag}"                                   # warn: no digest
    if r < 0.88:
        return f"docker.io/library/{rng.choice(['nginx', 'redis', 'busybox'])}:latest"
    if r < 0.95:
        return f"quay.io/{repo}:{tag}"                                 # other registry
    return f"{WMF}/{repo}"                                             # no tag


def container(name, indent):
    p = " " * indent
    port = rng.choice([8080, 8081, 9102, 6379])
    env = "".join(f"{p}    - name: ENV_{i}\n{p}      value: \"{rng.randint(0, 10**6)}\"\n"
                  for i in range(rng.randint(1, 5)))
    return (f"{p}- name: {name}\n{p}  image: {image()}\n{p}  imagePullPolicy: IfNotPresent\n"
            f"{p}  env:\n{env}{p}  ports:\n{p}    - containerPort: {port}\n{p}      protocol: TCP\n"
            f"{p}  livenessProbe:\n{p}    tcpSocket:\n{p}      port: {port}\n"
            f"{p}  resources:\n{p}    requests:\n{p}      cpu: {rng.randint(1, 20) * 50}m\n"
            f"{p}      memory: {rng.randint(1, 16) * 64}Mi\n{p}    limits:\n{p}      memory: 2Gi\n"
            f"{p}  volumeMounts:\n{p}    - name: config\n{p}      mountPath: /etc/{name}\n")


def pod_spec(name, indent):
    """A pod spec at `indent`: 1-3 containers, sometimes an init container."""
    p = " " * indent
    out = f"{p}serviceAccountName: {name}\n{p}securityContext:\n{p}  runAsNonRoot: true\n"
    if rng.random() < 0.3:
        out += f"{p}initContainers:\n" + container(f"{name}-init", indent + 2)
    out += f"{p}containers:\n"
    out += "".join(container(f"{name}-{i}", indent + 2) for i in range(rng.randint(1, 3)))
    return out + f"{p}volumes:\n{p}  - name: config\n{p}    configMap:\n{p}      name: {name}\n"


def metadata(name, ns):
    return (f"metadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: {name}\n"
            f"    app.kubernetes.io/managed-by: helmfile\n")


def template(name, indent):
    p = " " * indent
    return (f"{p}template:\n{p}  metadata:\n{p}    labels:\n{p}      app: {name}\n"
            f"{p}  spec:\n" + pod_spec(name, indent + 4))


def resource(kind, name, ns):
    api = {"StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Deployment": "apps/v1",
           "CronJob": "batch/v1", "Job": "batch/v1"}.get(kind, "v1")
    head = f"apiVersion: {api}\nkind: {kind}\n" + metadata(name, ns)
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        return head + (f"spec:\n  replicas: {rng.randint(1, 10)}\n  selector:\n    matchLabels:\n"
                       f"      app: {name}\n" + template(name, 2))
    if kind == "Job":
        return head + "spec:\n  backoffLimit: 2\n" + template(name, 2)
    if kind == "CronJob":
        return head + (f"spec:\n  schedule: \"{rng.randint(0, 59)} * * * *\"\n  jobTemplate:\n"
                       f"    spec:\n" + template(name, 6))
    if kind == "Pod":
        return head + "spec:\n" + pod_spec(name, 2)
    if kind == "Service":
        return head + (f"spec:\n  type: ClusterIP\n  selector:\n    app: {name}\n  ports:\n"
                       f"    - name: http\n      port: 80\n      targetPort: 8080\n")
    data = "".join(f"  key-{i}.conf: |\n    setting_{i} = {rng.randint(0, 10**9)}\n"
                   f"    other_{i} = \"{rng.randint(0, 10**9):x}\"\n" for i in range(rng.randint(4, 20)))
    return head + "data:\n" + data


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    files = DIRS * FILES_PER_DIR
    # Every file holds at least one resource; the other 1,500 land on random files.
    counts = [1] * files
    for _ in range(RESOURCES - files):
        counts[rng.randrange(files)] += 1
    kinds, weights = zip(*KINDS)
    total_bytes = n = 0
    for f, count in enumerate(counts):
        d = os.path.join(root, f"service-{f // FILES_PER_DIR:02}")
        os.makedirs(d, exist_ok=True)
        ns = f"ns-{f // FILES_PER_DIR:02}"
        docs = [resource(rng.choices(kinds, weights)[0], f"app-{f:03}-{i}", ns) for i in range(count)]
        text = "---\n".join(docs)
        with open(os.path.join(d, f"release-{f % FILES_PER_DIR:02}.yaml"), "w") as out:
            out.write(text)
        total_bytes += len(text.encode())
        n += count
    print(f"{files} files, {n} resources, {total_bytes} bytes "
          f"({total_bytes / n / 1024:.2f} KiB per resource)")


if __name__ == "__main__":
    main()
