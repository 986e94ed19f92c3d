#!/usr/bin/env bash
# Builds the agent's image without a registry: the nfcc binary built here (NFCC, default
# target/release/nfcc), the shared libraries `ldd` says it needs, and the few tools the
# DaemonSet's init container runs (sh, mount, mountpoint), copied into an image FROM scratch.
# The image behaves as the Containerfile's (same entrypoint and default command); use the
# Containerfile where a registry is reachable.
#
#   bash deploy/container/build-local.sh [NFCC] [TAG]    (default tag nfcc:local)
set -euo pipefail
cd "$(dirname "$0")/../.."
nfcc=${1:-target/release/nfcc}
tag=${2:-nfcc:local}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/run" "$ctx/rootfs/sys/fs/bpf"
cp "$nfcc" "$ctx/rootfs/usr/local/bin/nfcc"
copy_with_libs() {
    local bin=$1
    mkdir -p "$ctx/rootfs$(dirname "$bin")"
    cp -L "$bin" "$ctx/rootfs$bin"
    ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$ctx/rootfs$(dirname "$lib")"
        cp -L "$lib" "$ctx/rootfs$lib"
    done
}
ldd "$nfcc" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
done
for tool in sh mount mountpoint; do
    copy_with_libs "$(command -v "$tool")"
done
cat > "$ctx/Containerfile" <<'CF'
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/usr/local/bin/nfcc"]
CMD ["agent", "--config", "/run/nfcc/agent/cluster", "--kubernetes", "--metrics", "0.0.0.0:9464"]
CF
podman build -q -t "$tag" "$ctx" > /dev/null
echo "built $tag ($(du -sh "$ctx/rootfs" | cut -f1) unpacked)"
