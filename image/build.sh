#!/usr/bin/env bash
# Builds tollgate's container image without a container engine, from Debian's own packages,
# and pushes it with plain registry API calls. image/Containerfile describes the same image for
# teams with a builder; docs/image.md says what is inside and how to pin it.
#
# Usage: image/build.sh [--plain-http] [--out DIR] BINARY REGISTRY/REPOSITORY:TAG
#        image/build.sh --rootfs DIR BINARY
#
#   BINARY        a tollgate binary for this machine's architecture, linked against this
#                 machine's Debian release (a `cargo build --release` here)
#   --plain-http  talk HTTP, not HTTPS, to the registry (a loopback test registry)
#   --out DIR     also write the image as an OCI image layout in DIR
#   --rootfs DIR  only assemble the root filesystem in DIR (what image/Containerfile copies)
#
# Environment: TOLLGATE_TOOLS_DIR (default ~/.cache/tollgate/tools) caches the downloaded
# .debs, so a machine downloads them once; TOLLGATE_REGISTRY_AUTH=user:password for a registry
# with basic authentication (a token-auth registry: push the --out layout with skopeo, crane or
# oras instead); SOURCE_DATE_EPOCH (default 0) is every file's mtime and the image's creation
# time, so the same binary and packages give the same digest.
#
# Prints REGISTRY/REPOSITORY:TAG@sha256:<manifest digest> on stdout; progress goes to stderr.
set -euo pipefail

die() { echo "image/build.sh: $*" >&2; exit 2; }
usage() { sed -n '6,7s/^# //p' "$0" >&2; exit 2; }

plain_http=false out="" rootfs_only=""
while [ $# -gt 0 ]; do
  case $1 in
    --plain-http) plain_http=true; shift ;;
    --out) out=${2:?}; shift 2 ;;
    --rootfs) rootfs_only=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    --*) die "unknown option $1" ;;
    *) break ;;
  esac
done
binary=${1:-}
image=${2:-}
[ -n "$binary" ] || usage
[ -n "$rootfs_only" ] || [ -n "$image" ] || usage
[ -x "$binary" ] || die "$binary is not an executable file"

# What a fresh Debian machine may lack, and the package that brings it.
missing=()
for tool in apt-get:apt dpkg-deb:dpkg tar:tar gzip:gzip sha256sum:coreutils strip:binutils \
            readelf:binutils curl:curl; do
  command -v "${tool%%:*}" > /dev/null || missing+=("${tool#*:}")
done
[ ${#missing[@]} -eq 0 ] || die "missing tools; install them with: apt-get install ${missing[*]}"

# The packages of the image: the binary's libraries (`ldd` on a release build: libc.so.6,
# libm.so.6 and the loader from libc6, libgcc_s.so.1, libz.so.1 through libgit2), the CA
# certificates rustls-native-certs reads, the zone database, and base-files for /etc/os-release
# (how tollgate's own base-not-approved rule recognises a Debian image without lineage).
packages=(base-files libc6 libgcc-s1 zlib1g ca-certificates tzdata)

arch=$(dpkg --print-architecture)
case $arch in
  amd64|arm64|s390x|riscv64) oci_arch=$arch ;;
  ppc64el) oci_arch=ppc64le ;;
  i386) oci_arch=386 ;;
  *) die "no OCI architecture name known for Debian's $arch" ;;
esac

cache="${TOLLGATE_TOOLS_DIR:-$HOME/.cache/tollgate/tools}/image-debs/$arch"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache"

# fetch PACKAGE: download PACKAGE's .deb into the cache unless it is there. apt-get download
# needs the package lists; a fresh machine has none, so a failure runs `apt-get update` once.
updated=false
cached() { find "$cache" -maxdepth 1 -name "${1}_*.deb" | LC_ALL=C sort | tail -n 1; }
fetch() {
  local pkg=$1 got
  [ -z "$(cached "$pkg")" ] || return 0
  echo "image/build.sh: downloading $pkg (cached in $cache)" >&2
  rm -rf "$work/dl" && mkdir -p "$work/dl"
  if ! (cd "$work/dl" && apt-get download -qq "$pkg" > /dev/null 2>&1); then
    if ! $updated && [ "$(id -u)" -eq 0 ]; then
      apt-get update -qq > /dev/null
      updated=true
    fi
    (cd "$work/dl" && apt-get download -qq "$pkg" > /dev/null) ||
      die "apt-get download $pkg failed (run apt-get update as root first)"
  fi
  # Into the cache in one rename: an interrupted build leaves no partial .deb behind.
  got=$(find "$work/dl" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
  [ -n "$got" ] || die "apt-get download $pkg wrote no .deb"
  mv "$got" "$cache/"
}

# ---- the root filesystem ---------------------------------------------------------------------
root=${rootfs_only:-$work/rootfs}
mkdir -p "$root"
versions=()
for pkg in "${packages[@]}"; do
  fetch "$pkg"
  file=$(cached "$pkg")
  dpkg-deb -x "$file" "$root"
  versions+=("$pkg=$(dpkg-deb -f "$file" Version)")
done
# Maintainer scripts are not run (nothing in the image could run them); what they would have
# made is made here. Documentation, manuals and lintian overrides go; copyright files stay.
find "$root/usr/share/doc" -type f ! -name copyright -delete
find "$root/usr/share/doc" -type l -delete
find "$root/usr/share/doc" -type d -empty -delete
rm -rf "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian" \
  "$root/usr/sbin/update-ca-certificates" "$root/etc/ca-certificates"
# ca-certificates' postinst (update-ca-certificates): the bundle every TLS client reads.
mkdir -p "$root/etc/ssl/certs"
find "$root/usr/share/ca-certificates" -name '*.crt' -print0 | LC_ALL=C sort -z \
  | xargs -0 sed -e '$a\' > "$root/etc/ssl/certs/ca-certificates.crt"
[ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || die "no CA certificates in ca-certificates"
# tzdata's postinst: UTC, as distroless images have it.
ln -sfn /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
echo "Etc/UTC" > "$root/etc/timezone"
# The users and groups of distroless images; the image runs as nonroot (65532).
cat > "$root/etc/passwd" << 'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin
EOF
cat > "$root/etc/group" << 'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
# /etc/hosts before DNS, as the kubelet's /etc/hosts expects.
echo "hosts: files dns" > "$root/etc/nsswitch.conf"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf" "$root/etc/timezone" \
  "$root/etc/ssl/certs/ca-certificates.crt"

# The binary, without symbols: the release profile strips them already; a debug build (as the
# tests use) would otherwise be ~300 MB, and a layer over 32 MiB is one tollgate's base check
# does not download.
app=$work/app
mkdir -p "$app/usr/bin"
strip -o "$app/usr/bin/tollgate" "$binary"
chmod 0755 "$app/usr/bin/tollgate"

# Check that the image's own loader finds every library the binary needs inside the image, then
# ask the binary its version through that loader.
interp=$(readelf -l "$binary" | sed -n 's/.*program interpreter: \(.*\)]$/\1/p')
[ -n "$interp" ] || die "$binary has no program interpreter (is it an ELF executable?)"
# Links are followed inside the image: Debian's /lib64 loader link is absolute.
loader=$root$interp
while [ -L "$loader" ]; do
  target=$(readlink "$loader")
  case $target in
    /*) loader=$root$target ;;
    *) loader=$(dirname "$loader")/$target ;;
  esac
done
[ -f "$loader" ] || die "the image has no $interp, the binary's loader"
triplet=$(basename "$(dirname "$loader")")
ldso=("$loader" --inhibit-cache --library-path "$root/lib/$triplet:$root/usr/lib/$triplet")
libs=$("${ldso[@]}" --list "$app/usr/bin/tollgate") ||
  die "the image's loader cannot load $binary (another architecture or Debian release?)"
outside=$(echo "$libs" | grep '=>' | grep -v "=> $root/" || true)
[ -z "$outside" ] || die "the binary needs libraries the image lacks: $outside"
version=$("${ldso[@]}" "$app/usr/bin/tollgate" --version | awk '{ print $2; exit }')
[ -n "$version" ] || die "$binary --version printed nothing"

if [ -n "$rootfs_only" ]; then
  cp -a "$app/usr/bin/tollgate" "$root/usr/bin/tollgate"
  echo "image/build.sh: root filesystem of tollgate $version in $root" >&2
  exit 0
fi

# ---- layers, config, manifest ----------------------------------------------------------------
epoch=${SOURCE_DATE_EPOCH:-0}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
blobs=$work/blobs
mkdir -p "$blobs"

# blob FILE: store FILE under its digest; print the digest.
blob() {
  local d
  d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
  mv "$1" "$blobs/${d#sha256:}"
  echo "$d"
}
size() { stat -c %s "$blobs/${1#sha256:}"; }

# layer DIR: a reproducible gzip tar of DIR's tree (sorted names, one mtime, numeric owner 0,
# no atime/ctime); sets layer_digest and layer_diff_id.
layer() {
  (cd "$1" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort \
    | tar --create --file=- --no-recursion --verbatim-files-from --files-from=- --format=posix \
        --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime) > "$work/layer.tar"
  layer_diff_id=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  gzip -n -6 < "$work/layer.tar" > "$work/layer.tar.gz"
  layer_digest=$(blob "$work/layer.tar.gz")
  rm "$work/layer.tar"
}

# Two layers: the Debian part changes only with the packages, so a new tollgate reuses it.
layer "$root"
base_digest=$layer_digest base_diff_id=$layer_diff_id
layer "$app"
app_digest=$layer_digest app_diff_id=$layer_diff_id

revision=${TOLLGATE_REVISION:-$(git -C "$(dirname "$0")" rev-parse HEAD 2> /dev/null || echo unknown)}
cat > "$work/config.json" << EOF
{"architecture":"$oci_arch","os":"linux","created":"$created",
"config":{"User":"65532:65532","Entrypoint":["/usr/bin/tollgate"],"WorkingDir":"/",
"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
"Labels":{"org.opencontainers.image.title":"tollgate","org.opencontainers.image.version":"$version",
"org.opencontainers.image.revision":"$revision","org.opencontainers.image.url":"https://tollgate.dev/",
"dev.tollgate.image.packages":"${versions[*]}"}},
"rootfs":{"type":"layers","diff_ids":["$base_diff_id","$app_diff_id"]},
"history":[{"created":"$created","created_by":"image/build.sh: Debian packages ${packages[*]}"},
{"created":"$created","created_by":"image/build.sh: /usr/bin/tollgate $version"}]}
EOF
config_digest=$(blob "$work/config.json")

cat > "$work/manifest.json" << EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$config_digest","size":$(size "$config_digest")},
"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$base_digest","size":$(size "$base_digest")},
{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$app_digest","size":$(size "$app_digest")}]}
EOF
manifest_size=$(stat -c %s "$work/manifest.json")
manifest_digest=$(blob "$work/manifest.json")

if [ -n "$out" ]; then
  mkdir -p "$out/blobs/sha256"
  cp "$blobs"/* "$out/blobs/sha256/"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}\n' \
    "$manifest_digest" "$manifest_size" "${image##*:}" > "$out/index.json"
fi

# ---- push ------------------------------------------------------------------------------------
host=${image%%/*}
rest=${image#*/}
tag=${rest##*:}
repo=${rest%:*}
[ "$host" != "$image" ] && [ "$tag" != "$rest" ] && [ -n "$tag" ] && [[ $tag != */* ]] ||
  die "$image: expected REGISTRY/REPOSITORY:TAG"
scheme=https
$plain_http && scheme=http
base_url=$scheme://$host
auth=()
if [ -n "${TOLLGATE_REGISTRY_AUTH:-}" ]; then
  # In a file, not on the command line, where every process could read it.
  (umask 077 && printf 'user = "%s"\n' "$TOLLGATE_REGISTRY_AUTH" > "$work/curlrc")
  auth=(--config "$work/curlrc")
fi

# Monolithic blob upload: POST opens an upload session, PUT ...&digest= closes it with the bytes.
# A blob the repository already has is not sent again.
push_blob() {
  local d=$1 location sep
  if curl -fsS -o /dev/null -I "${auth[@]}" "$base_url/v2/$repo/blobs/$d" 2> /dev/null; then
    return
  fi
  location=$(curl -fsS -o /dev/null -D - -X POST "${auth[@]}" "$base_url/v2/$repo/blobs/uploads/" \
    | tr -d '\r' | sed -n 's/^[Ll]ocation: //p') || die "POST $base_url/v2/$repo/blobs/uploads/ failed"
  [ -n "$location" ] || die "the registry opened no upload session for $repo"
  case $location in /*) location=$base_url$location ;; esac
  sep='?'
  case $location in *\?*) sep='&' ;; esac
  curl -fsS -o /dev/null -X PUT "${auth[@]}" -H 'Content-Type: application/octet-stream' \
    --data-binary "@$blobs/${d#sha256:}" "$location${sep}digest=$d" || die "uploading $d failed"
}

for d in "$base_digest" "$app_digest" "$config_digest"; do
  push_blob "$d"
done
answer=$(curl -fsS -o /dev/null -D - -X PUT "${auth[@]}" \
  -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary "@$blobs/${manifest_digest#sha256:}" "$base_url/v2/$repo/manifests/$tag" \
  | tr -d '\r') || die "PUT $base_url/v2/$repo/manifests/$tag failed"
echo "$answer" | grep -qi "^docker-content-digest: $manifest_digest$" ||
  die "the registry stored the manifest under another digest than $manifest_digest"
echo "image/build.sh: pushed tollgate $version ($(size "$base_digest") + $(size "$app_digest") bytes of layers)" >&2
echo "$image@$manifest_digest"
