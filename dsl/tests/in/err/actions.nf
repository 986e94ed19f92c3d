policy p on xdp {
    pool web = { 10.0.0.1 }
    rule a: udp => drop, count
    rule b: tcp => pass, drop
    rule c: icmp => count
    rule d: ipv4 => dorp
    rule e: ipv6 => set tcp.flags = 2, pass
    rule f: arp => balance web by (ip.src), pass
    rule g: frag => dec tcp.dport, drop
    default pass
}
