policy p on xdp {
    rule a: udp => drop
}
