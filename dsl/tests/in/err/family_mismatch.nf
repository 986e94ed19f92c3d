policy p on xdp {
    set v4: ipv4 prefix = { 10.0.0.0/8, 2001:db8::/32 }
    pool mixed = { 10.0.0.1, 2001:db8::1 }
    rule a: ipv4.src in 2001:db8::/32 => drop
    rule b: ipv6.dst == 192.0.2.1 => drop
    rule c: ipv6.src in v4 => drop
    rule d: tcp.dport == 80 => balance mixed by (ip.src), tx
    default pass
}
