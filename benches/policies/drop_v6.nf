# Benchmark policy (issue 6): drop IPv6; C equivalent benches/c/drop_v6.c.
policy drop_v6 on xdp {
    rule no_ipv6: ipv6 => drop
    default pass

    test "ipv6 is dropped" {
        send ipv6(src=2001:db8::1, dst=2001:db8::2) / udp(sport=1234, dport=53)
        expect drop by no_ipv6
    }
}
