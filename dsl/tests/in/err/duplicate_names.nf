policy p on xdp {
    set blocked: ipv4 prefix = { 192.0.2.0/24 }
    set blocked: ipv6 prefix = { 2001:db8::/32 }
    counter blocked: key ip.src
    rule a: ip.src in blocked => drop
    rule a: udp => drop
    default pass
    test "x" { send ipv4() / udp() expect pass }
    test "x" { send ipv4() / udp() expect pass }
}
policy p on xdp {
    default pass
}
