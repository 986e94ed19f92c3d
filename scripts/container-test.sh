#!/usr/bin/env bash
# The agent's image on this machine, with podman: built (deploy/container/build-local.sh, no
# registry needed), run on the host network with only CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON,
# bpffs and /run/nfcc from the host, a binding for a veth made here; it must attach the policy
# and serve /metrics with the deployment's series. Skipped, with the reason, where podman or
# root is missing.
#
#   bash scripts/container-test.sh [NFCC]
set -euo pipefail
cd "$(dirname "$0")/.."
nfcc=${1:-target/release/nfcc}
if ! command -v podman >/dev/null 2>&1; then
    echo "skipped: the container test needs podman (apt-get install podman)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "skipped: the container test needs root (host network, BPF capabilities)"
    exit 0
fi
bash deploy/container/build-local.sh "$nfcc" nfcc:local
cfg=$(mktemp -d)
name=nfcc-agent-ct-$$
port=$((20000 + $$ % 10000))
cleanup() {
    # shellcheck disable=SC2086
    podman ${PODMAN_FLAGS:-} rm -f "$name" >/dev/null 2>&1 || true
    "$nfcc" unload --iface ctx$$ >/dev/null 2>&1 || true
    ip link del ctx$$ 2>/dev/null || true
    rm -rf "$cfg"
}
trap cleanup EXIT
ip link add ctx$$ type veth peer name cty$$
ip link set ctx$$ up
ip link set cty$$ up
cp examples/ddos_guard.nf "$cfg/"
printf 'policy_file = "ddos_guard.nf"\ninterfaces = ["ctx%s"]\n' $$ > "$cfg/edge.toml"
mkdir -p /run/nfcc
# Machines like the CI's run with cgroups in hybrid mode (crun refuses) and without
# CAP_SYS_RESOURCE (podman's default rlimits cannot be set): runc with cgroupfs and rlimits
# under the caller's own then (override with PODMAN_FLAGS).
if [ -z "${PODMAN_FLAGS+x}" ] && command -v runc >/dev/null 2>&1; then
    PODMAN_FLAGS="--runtime runc --cgroup-manager=cgroupfs"
fi
# --security-opt seccomp=unconfined: podman's default profile here allows bpf(2) only with
# CAP_SYS_ADMIN (the DaemonSet says the same).
limits="--ulimit nofile=$(ulimit -n):$(ulimit -n) --ulimit nproc=4096:4096"
# shellcheck disable=SC2086
podman ${PODMAN_FLAGS:-} run -d --name "$name" --network host $limits \
    --cap-drop all --cap-add bpf,net_admin,perfmon --read-only --security-opt seccomp=unconfined \
    -v /sys/fs/bpf:/sys/fs/bpf -v /run/nfcc:/run/nfcc -v "$cfg:/config:ro" \
    nfcc:local agent --config /config --metrics "127.0.0.1:$port" >/dev/null
for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/metrics" 2>/dev/null | grep -q "nfcc_policy_info{policy=\"ddos_guard\",interface=\"ctx$$\""; then
        "$nfcc" status | grep "ddos_guard@ctx$$"
        curl -sf "http://127.0.0.1:$port/healthz"
        # shellcheck disable=SC2086
        podman ${PODMAN_FLAGS:-} stop -t 5 "$name" >/dev/null
        # Stopped with SIGTERM: the program stays attached.
        "$nfcc" status | grep -q "ddos_guard@ctx$$" || { echo "error: stopping the container detached the policy" >&2; exit 1; }
        echo "the agent's image attached the policy from a container and served its metrics"
        exit 0
    fi
    sleep 0.2
done
echo "error: the agent in the container did not attach the policy or serve its metrics" >&2
# shellcheck disable=SC2086
podman ${PODMAN_FLAGS:-} logs "$name" >&2 || true
exit 1
