policy p on xdp {
    rule a: udp => drop
    default pass
    default drop
}
