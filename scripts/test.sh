#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). CI calls it from .ci/run on a fresh
# machine, so it installs what it needs itself (clang, llvm, bpftool, libbpf headers, bpffs).
# Kernel tests print "skipped: <why>" where they cannot run; with NFCC_REQUIRE_KERNEL=1 (set by
# .ci/run) such a skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install the Rust toolchain (rustup) first" >&2
    exit 2
fi
# rustfmt and clippy ship with rustup's default profile; add them if this toolchain lacks them.
for comp in rustfmt clippy; do
    if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$comp"
    fi
done

# Kernel tests compile reference C programs with clang against libbpf's headers and load
# objects with bpftool; install them when missing (CI machines start without them).
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v llvm-readelf >/dev/null 2>&1 || need+=(llvm)
command -v bpftool >/dev/null 2>&1 || need+=(bpftool)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
# libbpf-rs (a second loader in the tests) builds libbpf from source against libelf and zlib.
[ -f /usr/include/libelf.h ] || need+=(libelf-dev)
[ -f /usr/include/zlib.h ] || need+=(zlib1g-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
# The testbed benchmarks compare against nftables netdev ingress.
command -v nft >/dev/null 2>&1 || need+=(nftables)
# The AF_XDP tests run libxdp's default program (xsk_def_xdp_prog.o), as AF_XDP applications do.
ls /usr/lib/*/bpf/xsk_def_xdp_prog.o >/dev/null 2>&1 || need+=(libxdp1)
# `nfcc import iptables --verify` restores dumps with the machine's own iptables.
command -v iptables-restore >/dev/null 2>&1 || need+=(iptables)
command -v ipset >/dev/null 2>&1 || need+=(ipset)
# The agent's image is built and run with podman (runc with cgroupfs on hybrid-cgroup hosts).
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v curl >/dev/null 2>&1 || need+=(curl)
# Generic-XDP and TC benchmarks turn GRO on for the receiving veth.
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "note: ${need[*]} missing and cannot be installed here; kernel tests will say they were skipped"
    fi
fi
# Pinning and bpftool need bpffs.
if [ "$(id -u)" = 0 ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
    mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf || true
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Deployments (pins and manifests) that exist before the suite, so only the suite's are judged.
# On a fresh machine neither directory exists yet: `ls` fails, which is not an error here.
state_before=$( (ls /run/nfcc 2>/dev/null; ls /sys/fs/bpf/nfcc 2>/dev/null; true) | sort)
echo "== cargo test"
# insta fails on a snapshot mismatch instead of writing a new one when CI is set.
CI="${CI:-true}" cargo test --workspace --quiet 2>&1 | tee target/test-output.txt
echo "== testbeds left behind"
if command -v ip >/dev/null 2>&1; then
    left_ns=$(ip netns list 2>/dev/null | grep -c '^nfcc-tb-' || true)
    left_if=$(ip -o link show 2>/dev/null | grep -cE ': tb[0-9]+[tr][0-9]+[@:]' || true)
    if [ "$left_ns" != 0 ] || [ "$left_if" != 0 ]; then
        echo "error: the tests left $left_ns testbed namespace(s) and $left_if veth(s) behind" >&2
        ip netns list >&2; ip -o link show >&2
        exit 1
    fi
    echo "none"
fi
echo "== deployments left behind"
state_after=$( (ls /run/nfcc 2>/dev/null; ls /sys/fs/bpf/nfcc 2>/dev/null; true) | sort)
left_state=$(comm -13 <(echo "$state_before") <(echo "$state_after") | grep -c . || true)
if [ "$left_state" != 0 ]; then
    echo "error: the tests left $left_state deployment file(s) in /run/nfcc or /sys/fs/bpf/nfcc:" >&2
    comm -13 <(echo "$state_before") <(echo "$state_after") >&2
    exit 1
fi
echo "none"
echo "== nfcc on the examples (release build)"
cargo build --release --quiet -p nfcc
./target/release/nfcc check examples/*.nf
./target/release/nfcc test examples/*.nf
echo "== bench ratios across the traffic generators this kernel allows (short run)"
bash benches/scripts/generators.sh ./target/release/nfcc 0.3 1
echo "== the Kubernetes manifests (offline: there is no cluster here)"
if command -v python3 >/dev/null 2>&1 && python3 -m venv --help >/dev/null 2>&1; then
    bash scripts/validate-manifests.sh ./target/release/nfcc
elif [ "${NFCC_REQUIRE_KERNEL:-}" = 1 ]; then
    echo "error: python3 with venv is needed to validate deploy/kubernetes" >&2
    exit 1
else
    echo "skipped: validating deploy/kubernetes needs python3 with venv"
fi
echo "== the agent's image with podman"
bash scripts/container-test.sh ./target/release/nfcc
echo "== the BPF ISA conformance suite on the interpreter, the JIT and rbpf"
./target/release/nfcc conformance ../shared/conformance/tests --engine all
