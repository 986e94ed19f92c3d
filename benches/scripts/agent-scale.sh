#!/bin/sh
# The agent's reconcile time per node for N bindings (default 1, 10 and 100), each binding
# its own policy (examples/ddos_guard.nf renamed, with its tests) on its own veth: a cold
# start (every revision checked and tested on the emulator, every policy compiled and loaded),
# a restart that adopts everything (revisions checked again, nothing loaded), and the steady
# state of a running agent (nothing changed: the bindings re-read and hashed, interfaces and
# deployments listed), read from its own `nfcc_agent_reconcile_seconds` histogram; and the
# metrics' cardinality (series on /metrics per deployment).
#
#   benches/scripts/agent-scale.sh [NFCC] [COUNTS...]    (root)
set -e
nfcc=${1:-nfcc}
[ $# -gt 0 ] && shift
counts=${*:-1 10 100}
here=$(cd "$(dirname "$0")" && pwd)
example=$here/../../examples/ddos_guard.nf
dir=$(mktemp -d /tmp/nfcc-agent-scale.XXXXXX)
cleanup() {
    for i in $(seq 0 199); do ip link del "as$i" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
printf '%-9s %10s %10s %14s %14s\n' bindings cold_s adopt_s steady_ms series/deploy
for n in $counts; do
    rm -rf "${dir:?}"/*
    for i in $(seq 0 $((n - 1))); do
        ip link add "as$i" type veth peer name "bs$i"
        ip link set "as$i" up
        ip link set "bs$i" up
        sed "s/policy ddos_guard /policy guard$i /" "$example" > "$dir/guard$i.nf"
        printf 'policy_file = "guard%s.nf"\ninterfaces = ["as%s"]\n' "$i" "$i" > "$dir/b$i.toml"
    done
    t0=$(date +%s%N)
    "$nfcc" agent --config "$dir" --once > /dev/null 2>&1
    t1=$(date +%s%N)
    "$nfcc" agent --config "$dir" --once > /dev/null 2>&1
    t2=$(date +%s%N)
    "$nfcc" agent --config "$dir" --interval 200ms --metrics 127.0.0.1:19321 > "$dir/agent.log" 2>&1 &
    pid=$!
    # Steady state: the reconciles between two scrapes, after the first (which checked every
    # revision) is long done.
    sleep "$(awk -v a="$(secs "$t1" "$t2")" 'BEGIN { printf "%d", a + 3 }')"
    a=$(curl -s http://127.0.0.1:19321/metrics)
    sleep 4
    b=$(curl -s http://127.0.0.1:19321/metrics)
    kill -TERM "$pid"; wait "$pid" || true
    field() { echo "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
    steady=$(awk -v s1="$(field "$a" nfcc_agent_reconcile_seconds_sum)" -v s2="$(field "$b" nfcc_agent_reconcile_seconds_sum)" \
        -v c1="$(field "$a" nfcc_agent_reconcile_seconds_count)" -v c2="$(field "$b" nfcc_agent_reconcile_seconds_count)" \
        'BEGIN { if (c2 > c1) printf "%.1f", (s2 - s1) / (c2 - c1) * 1000; else print "-" }')
    series=$(echo "$b" | grep -c '^nfcc_rule_\|^nfcc_policy_info' || true)
    printf '%-9s %10s %10s %14s %14s\n' "$n" "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$steady" "$(awk -v s="$series" -v n="$n" 'BEGIN { printf "%.0f", s / n }')"
    for i in $(seq 0 $((n - 1))); do "$nfcc" unload --iface "as$i" > /dev/null 2>&1 || true; ip link del "as$i"; done
done
