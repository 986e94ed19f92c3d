"""A ClassBench filter set as the rules a Linux firewall can say, shared by the iptables and
nftables writers (classbench_iptables.py, classbench_nft.py) so that both peers get the same
rules: filters in order, accept and drop alternating; filters whose ports apply to protocols
other than TCP and UDP are left out, and so is the flags column (TCP flags under ClassBench's
mask, which iptables cannot say).
"""


def rules(path):
    """Yields one dict per kept filter: src and dst (None for /0), proto (a number, or None
    for any), sport and dport ((lo, hi), or None for any), accept (bool)."""
    n = 0
    for l in open(path):
        l = l.strip()
        if not l.startswith('@'):
            continue
        p = l[1:].split()
        slo, shi, dlo, dhi = int(p[2]), int(p[4]), int(p[5]), int(p[7])
        proto, mask = (int(x, 16) for x in p[8].split('/'))
        sport = None if (slo, shi) == (0, 65535) else (slo, shi)
        dport = None if (dlo, dhi) == (0, 65535) else (dlo, dhi)
        if (sport or dport) and not (mask == 0xff and proto in (6, 17)):
            continue
        yield {
            'src': None if p[0] == '0.0.0.0/0' else p[0],
            'dst': None if p[1] == '0.0.0.0/0' else p[1],
            'proto': proto if mask == 0xff else None,
            'sport': sport,
            'dport': dport,
            'accept': n % 2 == 0,
        }
        n += 1
