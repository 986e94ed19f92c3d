const C = D
const D = C
policy p on xdp {
    rule default: udp.dport == C => drop
    rule j: udp => dec ipv6.hoplimit, pass
    default pass
}
