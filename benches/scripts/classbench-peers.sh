#!/bin/sh
# The ClassBench sets against iptables (nf_tables and legacy backends) and native nftables in
# the same testbed run: each set written as an iptables filter chain (as
# import/tests/corpus/generate.sh writes acl1_1k: rules whose ports apply to protocols other
# than TCP and UDP are left out, and the flags column, which iptables cannot say per
# ClassBench's mask, is dropped), restored and saved by this machine's iptables in a throwaway
# namespace, imported with `nfcc import iptables --hook xdp`, and measured with `nfcc bench
# --original` next to XDP drop-all; then the same rules as an nftables ruleset
# (classbench_nft.py), loaded and listed as JSON by this machine's nft, imported with `nfcc
# import nft --hook xdp` and measured against nftables the same way.
#
#   benches/scripts/classbench-peers.sh [NFCC] [SETS...]    (root; default: all six sets)
set -e
nfcc=${1:-nfcc}
[ $# -gt 0 ] && shift
sets=${*:-acl1_1k fw1_1k ipc1_1k acl1_10k fw1_10k ipc1_10k}
here=$(cd "$(dirname "$0")" && pwd)
data=$here/../../../shared/bench-data/classbench
out=${OUT:-/tmp/nfcc-classbench-peers}
mkdir -p "$out"
ns=nfcc-cbpeers-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
for set in $sets; do
    python3 "$here/classbench_iptables.py" "$data/$set" > "$out/$set.in"
    ip netns exec "$ns" iptables-restore < "$out/$set.in"
    ip netns exec "$ns" iptables-save | sed '/^# /d' > "$out/$set.rules"
    "$nfcc" import iptables "$out/$set.rules" --hook xdp --name "$(echo "$set" | tr -d _)" -o "$out/$set.nf" > "$out/$set.report" 2>&1
    echo "== $set: $(grep -c '^    rule ' "$out/$set.nf") rules imported"
    "$nfcc" compile "$out/$set.nf" --stats -o "$out/$set.o" 2>/dev/null | grep -v '^  maps'
    "$nfcc" bench "$out/$set.nf" --original "$out/$set.rules" --baseline drop ${BENCH_ARGS:---seconds 1 --runs 3} 2>/dev/null | sed -n '/^subject/,$p'
    python3 "$here/classbench_nft.py" "$data/$set" > "$out/$set.nft"
    ip netns exec "$ns" nft flush ruleset
    ip netns exec "$ns" nft -f "$out/$set.nft"
    ip netns exec "$ns" nft -j list ruleset > "$out/$set.json"
    ip netns exec "$ns" nft flush ruleset
    "$nfcc" import nft "$out/$set.json" --hook xdp --name "$(echo "$set" | tr -d _)" -o "$out/$set.nft.nf" > "$out/$set.nft.report" 2>&1
    echo "== $set as nftables: $(grep -c '^    rule ' "$out/$set.nft.nf") rules imported"
    "$nfcc" bench "$out/$set.nft.nf" --original "$out/$set.json" --baseline drop ${BENCH_ARGS:---seconds 1 --runs 3} 2>/dev/null | sed -n '/^subject/,$p'
done
