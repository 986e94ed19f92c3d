#!/bin/sh
# The balancer against benches/c/katran_encap.c in the same `nfcc bench` run, for a static pool,
# a dynamic pool, and a dynamic pool with `sticky` (the cost of the flow table): native XDP on
# the veth testbed, the policy's 32 test flows as traffic, drop-all as the ceiling. Use a
# release build of nfcc. Needs root and clang.
#
#   benches/scripts/katran.sh [NFCC] [SECONDS] [RUNS]
set -e
nfcc=${1:-nfcc}
secs=${2:-2}
runs=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
for p in katran_like katran_dynamic katran_sticky; do
    echo "== $p"
    "$nfcc" bench "$here/../policies/$p.nf" --seconds "$secs" --runs "$runs" --baseline c --baseline drop
done
