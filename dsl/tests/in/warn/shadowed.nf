policy p on xdp {
    set lan: ipv4 prefix = { 10.0.0.0/8 }
    rule web: tcp.dport in {80, 443} => pass
    rule https: tcp.dport == 443 and ip.src in 10.0.0.0/8 => drop
    rule lan: ip.src in lan => pass
    rule lan_dns: ipv4.src in 10.1.0.0/16 and udp.dport == 53 => drop
    rule any_tcp: ip.proto == tcp => drop
    rule syn: tcp.flags has syn => drop
    rule l4: l4.dport == 22 => drop
    rule ssh: udp.dport == 22 and ipv4.src == 192.0.2.1 => drop
    default pass
}
