#!/usr/bin/env bash
# The main job (README: "Run the demo"): builds nfcc, checks every example policy, compiles
# them to eBPF, runs their embedded tests on the reference evaluator and in the kernel
# (BPF_PROG_TEST_RUN, packet by packet against the evaluator), compiles the 10,000-rule
# ClassBench ACL through the kernel verifier, shows a diagnostic, attaches one policy to a
# veth pair in a network namespace to watch it drop real traffic, shows which rules a NIC could
# run, and measures Mpps on a veth testbed against C and nftables baselines.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v bpftool >/dev/null 2>&1 || need+=(bpftool)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
# Generic-XDP and TC benchmarks turn GRO on for the receiving veth.
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
# nfcc links libbpf (offload deployment), built from source against libelf and zlib; the bench
# baselines are C compiled with clang against libbpf's headers.
[ -f /usr/include/libelf.h ] || need+=(libelf-dev)
[ -f /usr/include/zlib.h ] || need+=(zlib1g-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v clang >/dev/null 2>&1 || need+=(clang)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "$(id -u)" = 0 ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
    mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf || true
fi
cargo build --release --quiet -p nfcc
nfcc=./target/release/nfcc
out=$(mktemp -d)
ns=nfcc-demo-$$
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    ip link del nfcc-demo0 2>/dev/null || true
    rm -rf "$out"
}
trap cleanup EXIT

echo "== 1. check every example policy"
$nfcc check examples/*.nf

echo
echo "== 2. compile them to eBPF objects (instructions, stack, maps, verifier work)"
for f in examples/*.nf; do
    $nfcc compile "$f" -o "$out/$(basename "$f" .nf).o" --stats
done

echo
echo "== 3. run their embedded tests on the emulator (no privileges), then on the emulator, its JIT"
echo "      and in the kernel, each held to the reference evaluator packet by packet"
$nfcc test examples/*.nf
if $nfcc test examples/*.nf --engine all; then :; else
    echo "(the kernel engine needs CAP_BPF; run the demo as root to see it)"
fi

echo
echo "== 4. import ClassBench acl1_10k (first match wins), check it, compile it through the verifier"
$nfcc import classbench ../shared/bench-data/classbench/acl1_10k --actions alternate -o "$out/acl1_10k.nf"
echo "wrote $(grep -c '^ *rule ' "$out/acl1_10k.nf") rules"
start=$(date +%s%N)
$nfcc check --short "$out/acl1_10k.nf" 2>"$out/warnings.txt" || true
end=$(date +%s%N)
echo "checked in $(( (end - start) / 1000000 )) ms; $(wc -l <"$out/warnings.txt") warnings, e.g.:"
head -2 "$out/warnings.txt"
$nfcc compile "$out/acl1_10k.nf" -o "$out/acl1_10k.o" --stats 2>/dev/null | head -1

echo
echo "== 5. what a mistake looks like"
cat >"$out/typo.nf" <<'NF'
policy typo on tc ingress {
    rule ssh: tcp.dprot == 22 and ip.src in 10.0.0.0/33 => tx
    default pass
}
NF
$nfcc check "$out/typo.nf" || echo "(exit $? as expected: the input was wrong)"

echo
echo "== 6. attach ddos_guard on a veth pair (native XDP) and send it real traffic"
if [ "$(id -u)" != 0 ]; then
    echo "skipped: attaching needs root (CAP_NET_ADMIN and CAP_BPF)"
    exit 0
fi
ip netns add "$ns"
ip link add nfcc-demo0 type veth peer name nfcc-demo1 netns "$ns"
ip addr add 10.200.0.1/24 dev nfcc-demo0
ip addr add fd00:200::1/64 dev nfcc-demo0 nodad
ip link set nfcc-demo0 up
ip -n "$ns" addr add 10.200.0.2/24 dev nfcc-demo1
ip -n "$ns" addr add fd00:200::2/64 dev nfcc-demo1 nodad
ip -n "$ns" link set nfcc-demo1 up
ip -n "$ns" link set lo up
# The policy sits on the namespace's side: it drops IPv6 and passes IPv4.
ip -n "$ns" link set dev nfcc-demo1 xdpdrv obj "$out/ddos_guard.o" sec xdp
ip -n "$ns" link show nfcc-demo1 | grep -o 'prog/xdp id [0-9]*' || true
if ping -c 3 -W 1 -i 0.2 10.200.0.2 >/dev/null; then echo "IPv4 ping: answered (rule default passes it)"; else echo "IPv4 ping: NOT answered (unexpected)"; fi
if ping -6 -c 3 -W 1 -i 0.2 fd00:200::2 >/dev/null 2>&1; then echo "IPv6 ping: answered (unexpected)"; else echo "IPv6 ping: dropped by rule no_ipv6"; fi
prog=$(ip -n "$ns" link show nfcc-demo1 | grep -o 'prog/xdp id [0-9]*' | grep -o '[0-9]*$' || true)
if [ -n "$prog" ]; then
    stats=$(bpftool prog show id "$prog" --json | grep -o '"map_ids":\[[0-9,]*\]' | grep -o '[0-9]\+' | while read -r id; do
        bpftool map show id "$id" | grep -q 'name ddos_guard_nfcc' && echo "$id"; done | head -1)
    echo "per-rule packet counters (slots: 0 no_ipv6, 1 blocklist, 2 dns_flood, 3 ssh_lan, 4 default), summed over CPUs:"
    for slot in 0 1 2 3 4; do
        # A per-CPU array: one 16-byte value (packets, bytes) per CPU; add up the packets.
        pkts=$(bpftool map lookup id "$stats" key $slot 0 0 0 -j 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(int.from_bytes(bytes(int(b,16) for b in v["value"][:8]),"little") for v in d["values"]))' 2>/dev/null || echo "?")
        echo "  slot $slot: $pkts packets"
    done
fi

echo
echo "== 7. which rules a SmartNIC could run, the split, and the emulator's proof that it is the same policy"
$nfcc offload-check examples/ipv6_edge.nf --target nfp

echo
echo "== 8. measure Mpps on a veth testbed: the 1,100-entry DNS blocklist against XDP drop-all,"
echo "      the same blocklist hand-written in C (LPM trie, hash per prefix length) and nftables"
if command -v nft >/dev/null 2>&1; then
    $nfcc bench benches/policies/blocklist.nf --runs 3 --seconds 1
else
    $nfcc bench benches/policies/blocklist.nf --runs 3 --seconds 1 --baseline drop --baseline c
fi
