# Ranges and ordering on values eBPF cannot order in one register (IPv6 addresses, MACs):
# compiled as the prefixes covering the range.
policy wide on xdp {
    rule v6_range: ipv6.src in 2001:db8::10..2001:db8::1:f => drop
    rule v6_below: ipv6.dst < ::2 => drop
    rule v6_above: ipv6.dst >= ff00:: => tx
    rule mac_high: eth.src > 02:00:00:00:ff:ff and eth.src <= 02:00:00:01:00:10 => drop
    default pass

    test "ipv6 range edges" {
        send ipv6(src=2001:db8::f, dst=2001:db8::99) / udp()
        expect pass
        send ipv6(src=2001:db8::10, dst=2001:db8::99) / udp()
        expect drop by v6_range
        send ipv6(src=2001:db8::abcd, dst=2001:db8::99) / udp()
        expect drop by v6_range
        send ipv6(src=2001:db8::1:f, dst=2001:db8::99) / udp()
        expect drop by v6_range
        send ipv6(src=2001:db8::1:10, dst=2001:db8::99) / udp()
        expect pass
    }
    test "ipv6 ordering" {
        send ipv6(src=2001:db8::5, dst=::1) / udp()
        expect drop by v6_below
        send ipv6(src=2001:db8::5, dst=::2) / udp()
        expect pass
        send ipv6(src=2001:db8::5, dst=ff02::1) / udp()
        expect tx by v6_above
        send ipv6(src=2001:db8::5, dst=feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff) / udp()
        expect pass
    }
    test "mac ordering" {
        send eth(src=02:00:00:01:00:00) / ipv4() / udp()
        expect drop by mac_high
        send eth(src=02:00:00:01:00:11) / ipv4() / udp()
        expect pass
        send eth(src=02:00:00:00:ff:ff) / ipv4() / udp()
        expect pass
    }
}

# Masked fields against ranges and lists.
policy masked_items on tc ingress {
    rule flags_range: tcp.flags & 0x12 in 1..3 => drop
    rule dscp_list:   ip.dscp & 0x38 in {8..16, 40} => drop
    default pass

    test "masked ranges" {
        send ipv4(src=192.0.2.1) / tcp(flags=syn)
        expect drop by flags_range
        send ipv4(src=192.0.2.1) / tcp(flags=syn|ack)
        expect pass
        send ipv4(src=192.0.2.1) / tcp(flags=ack)
        expect pass
    }
    test "masked lists" {
        send ipv4(src=192.0.2.1, dscp=10) / udp()
        expect drop by dscp_list
        send ipv4(src=192.0.2.1, dscp=47) / udp()
        expect drop by dscp_list
        send ipv4(src=192.0.2.1, dscp=7) / udp()
        expect pass
    }
}
