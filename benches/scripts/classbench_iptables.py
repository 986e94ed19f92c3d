"""A ClassBench filter set as an iptables-restore input: an INPUT chain (policy DROP) of the
rules of classbench_rules.py. Used by import/tests/corpus/generate.sh and
benches/scripts/classbench-peers.sh.

    python3 classbench_iptables.py FILTERS > RULES.in
"""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classbench_rules import rules

out = ['*filter', ':INPUT DROP [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]']
for f in rules(sys.argv[1]):
    r = '-A INPUT'
    if f['src']: r += f" -s {f['src']}"
    if f['dst']: r += f" -d {f['dst']}"
    if f['proto'] in (6, 17):
        r += ' -p ' + ('tcp' if f['proto'] == 6 else 'udp')
        for flag, ports in (('--sport', f['sport']), ('--dport', f['dport'])):
            if ports:
                lo, hi = ports
                r += f' {flag} {lo}' if lo == hi else f' {flag} {lo}:{hi}'
    elif f['proto'] is not None:
        r += f" -p {f['proto']}"
    r += ' -j ' + ('ACCEPT' if f['accept'] else 'DROP')
    out.append(r)
out.append('COMMIT')
print('\n'.join(out))
