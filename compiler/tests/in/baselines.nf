# The benchmark baselines: drop everything, and drop IPv6.
policy drop_all on xdp {
    default drop
    test "everything is dropped" {
        send ipv4() / udp()
        expect drop by default
        send raw(0x00) / truncate(1)
        expect drop by default
    }
}

policy drop_v6 on xdp {
    rule v6: ipv6 => drop
    default pass
    test "only ipv6 is dropped" {
        send ipv6() / tcp()
        expect drop by v6
        send vlan(id=3) / ipv6() / udp()
        expect drop by v6
        send ipv4() / tcp()
        expect pass by default
    }
}
