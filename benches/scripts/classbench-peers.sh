#!/bin/sh
# The ClassBench sets against iptables (nf_tables and legacy backends) in the same testbed run:
# each set written as an iptables filter chain (as import/tests/corpus/generate.sh writes
# acl1_1k: rules whose ports apply to protocols other than TCP and UDP are left out, and the
# flags column, which iptables cannot say per ClassBench's mask, is dropped), restored and
# saved by this machine's iptables in a throwaway namespace, imported with `nfcc import
# iptables --hook xdp`, and measured with `nfcc bench --original` next to XDP drop-all.
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
    python3 - "$data/$set" > "$out/$set.in" <<'PY'
import sys
out = ['*filter', ':INPUT DROP [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]']
n = 0
for l in open(sys.argv[1]):
    l = l.strip()
    if not l.startswith('@'):
        continue
    p = l[1:].split()
    src, dst = p[0], p[1]
    slo, shi, dlo, dhi = int(p[2]), int(p[4]), int(p[5]), int(p[7])
    proto, mask = (int(x, 16) for x in p[8].split('/'))
    ports = (slo, shi) != (0, 65535) or (dlo, dhi) != (0, 65535)
    r = '-A INPUT'
    if src != '0.0.0.0/0': r += f' -s {src}'
    if dst != '0.0.0.0/0': r += f' -d {dst}'
    if mask == 0xff and proto in (6, 17):
        r += ' -p ' + ('tcp' if proto == 6 else 'udp')
        if (slo, shi) != (0, 65535): r += f' --sport {slo}:{shi}' if slo != shi else f' --sport {slo}'
        if (dlo, dhi) != (0, 65535): r += f' --dport {dlo}:{dhi}' if dlo != dhi else f' --dport {dlo}'
    elif mask == 0xff:
        if ports: continue
        r += f' -p {proto}'
    elif ports:
        continue
    r += ' -j ' + ('ACCEPT' if n % 2 == 0 else 'DROP')
    out.append(r)
    n += 1
out.append('COMMIT')
print('\n'.join(out))
PY
    ip netns exec "$ns" iptables-restore < "$out/$set.in"
    ip netns exec "$ns" iptables-save | sed '/^# /d' > "$out/$set.rules"
    "$nfcc" import iptables "$out/$set.rules" --hook xdp --name "$(echo "$set" | tr -d _)" -o "$out/$set.nf" > "$out/$set.report" 2>&1
    echo "== $set: $(grep -c '^    rule ' "$out/$set.nf") rules imported"
    "$nfcc" compile "$out/$set.nf" --stats -o "$out/$set.o" 2>/dev/null | grep -v '^  maps'
    "$nfcc" bench "$out/$set.nf" --original "$out/$set.rules" --baseline drop ${BENCH_ARGS:---seconds 1 --runs 3} 2>/dev/null | sed -n '/^subject/,$p'
done
