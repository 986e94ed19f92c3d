policy p on xdp {
    rule a: tcp.dprot == 22 => drop
    rule b: ipv4.source == 10.0.0.1 => drop
    rule c: tcp => drop
    rule d: ttl == 3 => drop
    rule e: pkt.rxq == 1 and ipv4 => drop
    default pass
}
policy q on tc ingress {
    rule f: pkt.rxq == 1 => drop
    default pass
}
