policy p on xdp {
    limiter l: key ip.src, rate 0/s, burst 0
    rule a: tcp.dport == 70000 => drop
    rule b: ip.ttl > 256 => drop
    rule c: vlan.id == 4096 => drop
    rule d: ip.src in 10.0.0.0/33 => drop
    rule e: tcp.dport in 100..50 => drop
    rule f: ipv4.dscp == 64 => drop
    rule g: over l => sample 0, drop
    rule h: payload[10..100] == 0x00 => drop
    default pass
}
