#!/usr/bin/env python3
"""Inputs of benches/packages.sh (issue 16), python3 stdlib only, reproducible from fixed seeds.

  gen_packages.py fleet HOST STATUS OUT_LAYERS
      Push 500 Debian 12 images to the registry at HOST (plain HTTP, one keep-alive
      connection): 50 repositories `svc-NN` x 10 tags `1.T`. They share a base of 3 gzip tar
      layers: (1) etc/os-release (Debian 12 bookworm) and var/lib/dpkg/status = STATUS (this
      machine's real dpkg database); (2) about 20 MB (compressed) of varied files: text of
      pseudo-random words and base64 of random bytes, so that it does not compress to nothing;
      (3) a small layer. Each image adds 1 small layer of its own (a config file, a small
      binary-ish file, a README); every 5th image's own layer also rewrites
      var/lib/dpkg/status with one package's version changed. Base blobs are pushed once and
      cross-mounted into the other repositories. Writes each distinct layer's "DIGEST SIZE"
      to OUT_LAYERS.

  gen_packages.py big-layer STATUS OUT_LAYER [MB]
      Write one gzip tar layer (gzip -6): the regular files, directories and symlinks of
      /usr/share then /usr/lib, walked in sorted order, until MB (default 640) MB of file
      content is in, then var/lib/dpkg/status = STATUS and etc/os-release at the end (so a
      scanner must read the whole layer to find them). Reproducible on one machine; the
      content is whatever that machine's /usr holds.

  gen_packages.py push-big HOST LAYER REPO TAG
      Push one image whose only layer is LAYER (streamed from the file).

  gen_packages.py tracker STATUS OUT [MB]
      Write a synthetic Debian Security Tracker JSON export of about MB (default 60) MB, in
      the real shape: {srcpkg: {CVE: {description, scope, releases: {codename: {status,
      repositories, fixed_version, urgency, nodsa, nodsa_reason}}}}}, six releases per CVE
      (buster, bullseye, bookworm, trixie, forky, sid). The source packages of STATUS are in
      it: for bookworm some of their CVEs are fixed in a version newer than the installed one
      (findings), some in an older one (already fixed), some "0" (never affected), some open
      (no fix yet, a few with nodsa "postponed"). Thousands of synthetic source packages fill
      the rest. Prints counts.
"""
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile

OS_RELEASE = b"""PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def tar_gz(files):
    """A gzip tar (mtime 0, fixed owners) of [(path, bytes)]: (compressed, uncompressed digest)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        dirs = set()
        for path, data in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    t.addfile(ti)
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
    plain = raw.getvalue()
    return gzip.compress(plain, compresslevel=6, mtime=0), sha(plain)


class Registry:
    def __init__(self, host):
        self.host = host
        self.conn = http.client.HTTPConnection(host, timeout=600)

    def call(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        data = r.read()
        return r.status, r.getheader("Location"), data

    def blob(self, repo, data, digest=None, size=None):
        d = digest or sha(data)
        status, location, body = self.call("POST", f"/v2/{repo}/blobs/uploads/")
        assert status == 202, (status, body)
        sep = "&" if "?" in location else "?"
        path = location.split(self.host, 1)[-1]
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        status, _, body = self.call("PUT", f"{path}{sep}digest={d}", data, headers)
        assert status == 201, (status, body)
        return d

    def mount(self, repo, digest, source):
        status, _, body = self.call("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}")
        assert status == 201, (status, body)

    def image(self, repo, tag, layers, config):
        """layers: [(digest, size)]."""
        config = json.dumps(config, sort_keys=True).encode()
        config_digest = self.blob(repo, config)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": LAYER_TYPE, "digest": d, "size": n} for d, n in layers],
        }).encode()
        status, _, body = self.call("PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                                    {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert status == 201, (status, body)


def words(rng, n):
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(alphabet, k=rng.randint(2, 11))) for _ in range(n)]


def varied_layer(rng, target):
    """Files of pseudo-random words and of base64 random bytes until `target` compressed bytes."""
    import base64
    vocab = words(rng, 20000)
    files = []
    compressed = 0
    i = 0
    while compressed < target:
        if i % 3 == 2:
            data = base64.encodebytes(rng.randbytes(48 * 1024))
        else:
            ws = rng.choices(vocab, k=12000)
            lines = [" ".join(ws[j:j + 12]) for j in range(0, len(ws), 12)]
            data = ("\n".join(lines) + "\n").encode()
        files.append((f"usr/share/bench/data/{i // 100:03d}/file-{i:05d}.txt", data))
        # Estimated from each file alone; the exact size is measured once built.
        compressed += len(gzip.compress(data, compresslevel=1, mtime=0)) * 0.93
        i += 1
    return files


def change_one_version(status, rng):
    """STATUS with one package's Version: given a +bench1 suffix (a newer version)."""
    stanzas = status.split(b"\n\n")
    while True:
        k = rng.randrange(len(stanzas))
        lines = stanzas[k].split(b"\n")
        for j, line in enumerate(lines):
            if line.startswith(b"Version: "):
                lines[j] = line + b"+bench1"
                stanzas[k] = b"\n".join(lines)
                return b"\n\n".join(stanzas)


def fleet(host, status_path, out_layers):
    rng = random.Random(16)
    status = open(status_path, "rb").read()
    reg = Registry(host)
    base_files = [
        [("etc/os-release", OS_RELEASE), ("var/lib/dpkg/status", status)],
        varied_layer(rng, 20_000_000),
        [("etc/bench/base.conf", b"# base image\nlog_level = info\n"),
         ("usr/local/bin/entrypoint", b"#!/bin/sh\nexec \"$@\"\n")],
    ]
    base = []  # (digest, size, diff_id, data)
    for files in base_files:
        data, diff = tar_gz(files)
        base.append((sha(data), len(data), diff, data))
    distinct = {d: n for d, n, _, _ in base}
    first = "svc-00"
    for r in range(50):
        repo = f"svc-{r:02d}"
        for d, n, _, data in base:
            if r == 0:
                reg.blob(repo, data, d)
            else:
                reg.mount(repo, d, first)
        for t in range(10):
            i = r * 10 + t
            own = [("etc/app/config.json", json.dumps({"service": repo, "build": i}).encode()),
                   ("usr/local/bin/app", rng.randbytes(rng.randint(2048, 8192))),
                   ("usr/share/doc/app/README", f"{repo} {t}: built {i}\n".encode())]
            if i % 5 == 0:
                own.append(("var/lib/dpkg/status", change_one_version(status, rng)))
            data, diff = tar_gz(own)
            d = reg.blob(repo, data)
            distinct[d] = len(data)
            layers = [(b[0], b[1]) for b in base] + [(d, len(data))]
            config = {
                "created": f"2024-02-{1 + t:02d}T00:00:00Z",
                "architecture": "amd64", "os": "linux",
                "config": {"Labels": {"org.opencontainers.image.source": f"https://git.example.org/{repo}",
                                      "org.opencontainers.image.version": f"1.{t}"}},
                "rootfs": {"type": "layers", "diff_ids": [b[2] for b in base] + [diff]},
            }
            reg.image(repo, f"1.{t}", layers, config)
    with open(out_layers, "w") as f:
        for d, n in sorted(distinct.items()):
            f.write(f"{d} {n}\n")
    sizes = [b[1] for b in base]
    print(f"pushed 500 images in 50 repositories; base layers {sizes[0]:,} + {sizes[1]:,} + {sizes[2]:,} bytes; "
          f"{len(distinct)} distinct layers, {sum(distinct.values()):,} bytes")


def big_layer(status_path, out, mb=640):
    limit = mb * 1_000_000
    with open(out, "wb") as f:
        gz = subprocess.Popen(["gzip", "-6", "-n", "-c"], stdin=subprocess.PIPE, stdout=f)
        total = files = 0
        with tarfile.open(fileobj=gz.stdin, mode="w|", format=tarfile.PAX_FORMAT) as t:
            done = False
            for top in ("/usr/share", "/usr/lib"):
                for root, dirs, names in os.walk(top):
                    dirs.sort()
                    for name in sorted(names) + []:
                        p = os.path.join(root, name)
                        try:
                            st = os.lstat(p)
                        except OSError:
                            continue
                        import stat as s
                        if not (s.S_ISREG(st.st_mode) or s.S_ISLNK(st.st_mode)):
                            continue
                        try:
                            t.add(p, arcname=p.lstrip("/"), recursive=False)
                        except OSError:
                            continue
                        files += 1
                        if s.S_ISREG(st.st_mode):
                            total += st.st_size
                        if total >= limit:
                            done = True
                            break
                    if done:
                        break
                if done:
                    break
            for path, data in (("var/lib/dpkg/status", open(status_path, "rb").read()),
                               ("etc/os-release", OS_RELEASE)):
                ti = tarfile.TarInfo(path)
                ti.size = len(data)
                ti.mode = 0o644
                t.addfile(ti, io.BytesIO(data))
        gz.stdin.close()
        assert gz.wait() == 0
    print(f"{files:,} files, {total:,} bytes of content, {os.path.getsize(out):,} bytes compressed")


def push_big(host, layer, repo, tag):
    h = hashlib.sha256()
    plain = hashlib.sha256()
    size = os.path.getsize(layer)
    with open(layer, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    with gzip.open(layer, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            plain.update(chunk)
    d = "sha256:" + h.hexdigest()
    reg = Registry(host)
    with open(layer, "rb") as f:
        reg.blob(repo, f, d, size)
    config = {"created": "2024-03-01T00:00:00Z", "architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + plain.hexdigest()]}}
    reg.image(repo, tag, [(d, size)], config)
    print(f"pushed {repo}:{tag}, one layer {d} of {size:,} bytes")


def installed_sources(status):
    """{source package: source version} of the installed packages of a dpkg status file."""
    out = {}
    for stanza in status.split("\n\n"):
        fields = {}
        for line in stanza.split("\n"):
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            fields[k] = v.strip()
        if "Package" not in fields or "Version" not in fields:
            continue
        if not fields.get("Status", "install ok installed").endswith(" installed"):
            continue
        src = fields.get("Source", fields["Package"])
        ver = fields["Version"]
        if " (" in src:
            src, ver = src.split(" (", 1)
            ver = ver.rstrip(")")
        out[src] = ver
    return out


RELEASES = [("buster", "deb10u"), ("bullseye", "deb11u"), ("bookworm", "deb12u"),
            ("trixie", None), ("forky", None), ("sid", None)]
URGENCIES = ["low", "medium", "high", "unimportant", "not yet assigned"]


def tracker(status_path, out, mb=60):
    rng = random.Random(1616)
    installed = installed_sources(open(status_path, encoding="utf-8", errors="replace").read())
    vocab = words(rng, 3000) + ["buffer", "overflow", "heap", "use-after-free", "remote",
                                "attackers", "crafted", "denial", "of", "service", "via", "in",
                                "the", "allows", "function", "before", "NULL", "pointer"]
    names = set(installed)
    syllables = words(rng, 400)
    while len(names) < len(installed) + 6000:
        n = rng.choice(["lib", "python3-", "golang-", "node-", "", "", "r-cran-", "ruby-"]) + \
            rng.choice(syllables) + rng.choice(["", "", str(rng.randint(1, 9)), "-utils", "-tools"])
        names.add(n)
    names = sorted(names)
    target = mb * 1_000_000
    written = 0
    cves = 0
    rows = 0
    findings = 0
    year_n = {}

    def synth_version():
        up = f"{rng.randint(0, 30)}.{rng.randint(0, 20)}"
        if rng.random() < 0.6:
            up += f".{rng.randint(0, 40)}"
        if rng.random() < 0.15:
            up += "+dfsg"
        v = f"{up}-{rng.randint(1, 12)}"
        if rng.random() < 0.1:
            v = f"{rng.randint(1, 3)}:{v}"
        return v

    def in_release(v, suffix, k):
        # The release's own security suffix, in place of bookworm's if the version has one.
        v = re.sub(r"[+~]deb12u[0-9]+$", "", v)
        return f"{v}~{suffix}{k}" if suffix else v

    with open(out, "w") as f:
        f.write("{")
        for pi, pkg in enumerate(names):
            remaining = len(names) - pi
            budget = max(900, (target - written) / remaining)
            base_v = installed.get(pkg) or synth_version()
            entries = {}
            size = 0
            while size < budget:
                year = rng.randint(1999, 2026)
                year_n[year] = year_n.get(year, 1000 + rng.randint(0, 50)) + rng.randint(1, 7)
                cve = f"CVE-{year}-{year_n[year]}"
                releases = {}
                for rel, suffix in RELEASES:
                    r = rng.random()
                    k = rng.randint(1, 9)
                    entry = {"repositories": {rel: in_release(base_v, suffix, k) if pkg not in installed or rel != "bookworm" else base_v},
                             "urgency": rng.choice(URGENCIES)}
                    if pkg in installed and rel == "bookworm":
                        if r < 0.25:
                            entry.update(status="resolved", fixed_version=f"{base_v}+deb12u{k}")
                            findings += 1
                        elif r < 0.7:
                            entry.update(status="resolved", fixed_version=f"{base_v}~deb12u0")
                        elif r < 0.85:
                            entry.update(status="resolved", fixed_version="0")
                        elif r < 0.95:
                            entry.update(status="open")
                            if rng.random() < 0.5:
                                entry.update(nodsa="Minor issue", nodsa_reason="postponed")
                        else:
                            entry.update(status="undetermined")
                    elif r < 0.6:
                        entry.update(status="resolved", fixed_version=in_release(base_v, suffix, k))
                    elif r < 0.75:
                        entry.update(status="resolved", fixed_version="0")
                    elif r < 0.95:
                        entry.update(status="open")
                        if rng.random() < 0.5:
                            entry.update(nodsa="Minor issue", nodsa_reason="postponed")
                    else:
                        entry.update(status="undetermined")
                    releases[rel] = entry
                    rows += 1
                desc = " ".join(rng.choices(vocab, k=rng.randint(12, 40)))
                entries[cve] = {"description": desc[0].upper() + desc[1:] + ".",
                                "scope": rng.choice(["local", "remote"]),
                                "releases": releases}
                cves += 1
                size += len(json.dumps(entries[cve]))
                if pkg in installed and len(entries) >= 12:
                    break
            text = ("," if pi else "") + json.dumps(pkg) + ":" + json.dumps(entries, separators=(", ", ": "))
            f.write(text)
            written += len(text)
        f.write("}")
    print(f"{len(names):,} source packages ({len(installed)} installed on this machine), {cves:,} CVEs, "
          f"{rows:,} release entries, {findings} bookworm fixes newer than the installed version; "
          f"{os.path.getsize(out):,} bytes")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "fleet":
        fleet(*args)
    elif cmd == "big-layer":
        big_layer(args[0], args[1], *(int(a) for a in args[2:]))
    elif cmd == "push-big":
        push_big(*args)
    elif cmd == "tracker":
        tracker(args[0], args[1], *(int(a) for a in args[2:]))
    else:
        sys.exit(__doc__)
