"""A ClassBench filter set as a native nftables ruleset (`nft -f` input): an ip (IPv4) table with
an input chain (policy drop) of the rules of classbench_rules.py — the ones
classbench_iptables.py writes, so that iptables and nftables are measured on the same rules.
Used by benches/scripts/classbench-peers.sh.

    python3 classbench_nft.py FILTERS > RULES.nft
"""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classbench_rules import rules

out = ['table ip filter {', '  chain input {',
       '    type filter hook input priority 0; policy drop;']
for f in rules(sys.argv[1]):
    r = []
    if f['src']: r.append(f"ip saddr {f['src']}")
    if f['dst']: r.append(f"ip daddr {f['dst']}")
    if f['proto'] in (6, 17):
        l4 = 'tcp' if f['proto'] == 6 else 'udp'
        if not (f['sport'] or f['dport']):
            r.append(f'meta l4proto {l4}')
        for word, ports in (('sport', f['sport']), ('dport', f['dport'])):
            if ports:
                lo, hi = ports
                r.append(f'{l4} {word} {lo}' if lo == hi else f'{l4} {word} {lo}-{hi}')
    elif f['proto'] is not None:
        r.append(f"meta l4proto {f['proto']}")
    r.append('accept' if f['accept'] else 'drop')
    out.append('    ' + ' '.join(r))
out += ['  }', '}']
print('\n'.join(out))
