policy p on xdp {
    rule a: ip.src == 300.1.1.1 => drop
    rule b: ip.src == 2001:db8:::1 => drop
    rule c: tcp.dport == 999999999999999999999999999999999999999999 => drop
    default pass
}
