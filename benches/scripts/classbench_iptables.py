"""A ClassBench filter set as an iptables-restore input: an INPUT chain (policy DROP) of the
filters in order, ACCEPT and DROP alternating. Filters whose ports apply to protocols other
than TCP and UDP are left out (iptables cannot say them), and so is the flags column (TCP
flags under ClassBench's mask). Used by import/tests/corpus/generate.sh and
benches/scripts/classbench-peers.sh.

    python3 classbench_iptables.py FILTERS > RULES.in
"""
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
