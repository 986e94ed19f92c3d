policy p on xdp {
    rule a: tcp.dport == => drop
    default pass
}
