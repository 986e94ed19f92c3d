policy p on xdp {
    rule a: tcp and udp => drop
    rule b: tcp.dport == 1 and tcp.dport == 2 => drop
    rule c: ipv4 and ipv6.src == ::1 => drop
    rule d: ip.proto == udp and tcp.dport == 53 => drop
    rule e: icmp and ipv6 => drop
    rule f: (tcp or udp) and arp => drop
    rule g: tcp.dport < 0 => drop
    rule h: tcp.dport in {} => drop
    default pass
}
