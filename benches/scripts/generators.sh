#!/bin/sh
# Do the bench's ratios depend on the traffic generator? Runs `nfcc bench` on the blocklist
# policy (benches/policies/blocklist.nf) against XDP drop-all and its C equivalents once per
# generator this kernel allows (live frames, AF_XDP, AF_PACKET; the refused ones are said so)
# and compares, per subject, the ratio to the policy by each method: in-situ ns (kernel run
# statistics), per-core Mpps (where the generator kept up) and test-run ns. Prints the
# spread of each ratio across generators; with STRICT=1 exits 3 when a ratio taken from the
# same method differs by more than 10% between two generators.
#
#   benches/scripts/generators.sh [NFCC] [SECONDS] [RUNS]
set -e
nfcc=${1:-nfcc}
secs=${2:-1}
runs=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for g in live xsk packet; do
    if "$nfcc" bench "$here/../policies/blocklist.nf" --generator "$g" --seconds "$secs" \
        --runs "$runs" --baseline drop --baseline c --json >"$out/$g.json" 2>"$out/$g.err"; then
        echo "generator $g: measured"
    else
        echo "generator $g: not available here: $(tail -1 "$out/$g.err")"
        rm -f "$out/$g.json"
    fi
done
python3 - "$out" "${STRICT:-0}" <<'EOF'
import glob, json, os, sys
out, strict = sys.argv[1], sys.argv[2] == "1"
runs = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    doc = json.load(open(path))
    runs[doc["generator"]["name"]] = {r["label"]: r for r in doc["results"] if "mpps" in r}
if len(runs) < 2:
    print("fewer than two generators ran: nothing to compare")
    sys.exit(0)
ours = next(iter(next(iter(runs.values()))))
def ratio(rows, label, key, inverse):
    o, t = rows[ours].get(key), rows[label].get(key)
    if not o or not t:
        return None
    return (t / o) if inverse else (o / t)
methods = [("in-situ ns", "in_situ_ns", True), ("per-core Mpps", "mpps_per_core", False),
           ("test-run ns", "test_run_ns", True)]
labels = [l for l in next(iter(runs.values())) if l != ours]
worst = 0.0
print(f"{'subject':<32} {'method':<14} " + " ".join(f"{g:>8}" for g in runs) + "  spread")
for label in labels:
    for name, key, inverse in methods:
        vals = {g: ratio(rows, label, key, inverse) for g, rows in runs.items() if label in rows}
        got = [v for v in vals.values() if v]
        if not got:
            continue
        spread = (max(got) / min(got) - 1) if len(got) > 1 else 0.0
        if name != "test-run ns":
            worst = max(worst, spread)
        cells = " ".join(f"{vals[g]:8.3f}" if vals.get(g) else f"{'-':>8}" for g in runs)
        print(f"{label:<32} {name:<14} {cells}  {spread * 100:5.1f}%")
print(f"largest spread of a ratio across generators (in-situ ns, per-core Mpps): {worst * 100:.1f}%")
if strict and worst > 0.10:
    sys.exit(3)
EOF
