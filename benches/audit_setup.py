#!/usr/bin/env python3
"""Fixture for benches/audit.sh (issue 6, "Speed"): push IMAGES small images to a loopback
registry over plain HTTP and write the live state and the policy an audit reads.

Usage: audit_setup.py HOST OUTDIR [IMAGES] [PODS_PER_IMAGE]   (defaults 500 and 20)

Images: `HOST/svc/app-N:1.0`, N = 0..IMAGES-1, each an OCI manifest with a config (diff_ids)
and 2 or 3 gzip tar layers:
  - a base layer shared like a real base image: one of 5 (N % 5), so 100 images share each;
  - for even N, a runtime layer shared by 20 images (N % 25, 25 of them);
  - an application layer of its own.
Layers shared between images are pushed into each repository that uses them (a blob is linked
per repository, so the registry serves it under each repository's own URI).

OUTDIR/live.json: a kubectl-shaped List with, per image, one Deployment `app-N` in namespace
`team-(N % 10)`, its ReplicaSet `app-N-7d9f` (revision 1) and PODS_PER_IMAGE running Pods owned by
it, whose containerStatuses[].imageID is `HOST/svc/app-N@sha256:<pushed manifest digest>`.
OUTDIR/policy.yaml: a policy approving the registry (`insecure: true`, plain HTTP).
OUTDIR/images.tsv: reference, manifest digest, blob digests (one line per image).
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TIMEOUT = 30


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(name: str, size: int):
    """A gzip tar layer holding one file of `size` bytes; returns (gz, digest, diff_id)."""
    content = hashlib.sha256(name.encode()).digest() * (size // 32 + 1)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(f"opt/{name}/data.bin")
        info.size = size
        info.mode = 0o644
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content[:size]))
    raw = raw.getvalue()
    gz = gzip.compress(raw, compresslevel=1, mtime=0)
    return gz, sha256(gz), sha256(raw)


class Pusher:
    def __init__(self, host: str):
        self.base = f"http://{host}"
        # No proxies for loopback, whatever the environment says.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method, url, body=None, headers=None):
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        with self.opener.open(req, timeout=TIMEOUT) as r:
            r.read()
            return r.status, r.headers

    def blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        status, headers = self.request("POST", f"{self.base}/v2/{repo}/blobs/uploads/", b"")
        assert status == 202, f"start upload {repo}: {status}"
        location = urllib.parse.urljoin(self.base + "/", headers["Location"])
        sep = "&" if "?" in location else "?"
        status, _ = self.request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 201, f"put blob {repo} {digest}: {status}"
        return digest

    def manifest(self, repo: str, tag: str, body: bytes) -> str:
        status, headers = self.request(
            "PUT", f"{self.base}/v2/{repo}/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST}
        )
        assert status == 201, f"put manifest {repo}:{tag}: {status}"
        digest = headers.get("Docker-Content-Digest")
        assert digest == sha256(body), f"{repo}:{tag}: registry digest {digest}"
        return digest


def main():
    host, outdir = sys.argv[1], sys.argv[2]
    images = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    pods_per_image = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    os.makedirs(outdir, exist_ok=True)

    bases = [layer(f"base-{i}", 4096) for i in range(5)]
    runtimes = [layer(f"runtime-{i}", 2048) for i in range(25)]
    pusher = Pusher(host)

    def push(n: int):
        repo = f"svc/app-{n}"
        layers = [bases[n % 5]]
        if n % 2 == 0:
            layers.append(runtimes[n % 25])
        layers.append(layer(f"app-{n}", 1024))
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": [f"/opt/app-{n}/data.bin"]},
                "rootfs": {"type": "layers", "diff_ids": [d for _, _, d in layers]},
            },
            separators=(",", ":"),
        ).encode()
        config_digest = pusher.blob(repo, config)
        for gz, digest, _ in layers:
            assert pusher.blob(repo, gz) == digest
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [
                    {"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": len(gz)}
                    for gz, digest, _ in layers
                ],
            },
            separators=(",", ":"),
        ).encode()
        digest = pusher.manifest(repo, "1.0", manifest)
        return n, repo, digest, [config_digest] + [d for _, d, _ in layers]

    with ThreadPoolExecutor(max_workers=16) as pool:
        pushed = sorted(pool.map(push, range(images)))

    items = []
    with open(os.path.join(outdir, "images.tsv"), "w") as tsv:
        for n, repo, digest, blobs in pushed:
            tsv.write(f"{host}/{repo}:1.0\t{digest}\t{' '.join(blobs)}\n")
            image = f"{host}/{repo}:1.0"
            running = f"{host}/{repo}@{digest}"
            ns = f"team-{n % 10}"
            name = f"app-{n}"
            rs = f"{name}-7d9f"
            template = {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            }
            rev = {"deployment.kubernetes.io/revision": "1"}
            items.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": name, "namespace": ns, "annotations": rev},
                    "spec": {"replicas": pods_per_image, "template": template},
                }
            )
            items.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": rs,
                        "namespace": ns,
                        "annotations": rev,
                        "ownerReferences": [
                            {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "controller": True}
                        ],
                    },
                    "spec": {"replicas": pods_per_image, "template": template},
                }
            )
            for p in range(pods_per_image):
                items.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": f"{rs}-{p:05x}",
                            "namespace": ns,
                            "labels": {"app": name},
                            "ownerReferences": [
                                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "controller": True}
                            ],
                        },
                        "spec": {"containers": [{"name": "app", "image": image}]},
                        "status": {
                            "phase": "Running",
                            "containerStatuses": [
                                {"name": "app", "image": image, "imageID": running, "ready": True}
                            ],
                        },
                    }
                )
    with open(os.path.join(outdir, "live.json"), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    with open(os.path.join(outdir, "policy.yaml"), "w") as f:
        f.write(
            "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: bench-audit\n"
            f"spec:\n  registries:\n    - prefix: {host}\n      insecure: true\n"
        )
    pods = sum(1 for i in items if i["kind"] == "Pod")
    blobs = len({(repo, b) for _, repo, _, bs in pushed for b in bs})
    print(f"pushed {len(pushed)} images ({blobs} repository blobs), wrote {pods} pods, "
          f"{len(items) - pods} controllers")


if __name__ == "__main__":
    main()
