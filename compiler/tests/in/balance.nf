# Consistent-hash load balancing: the kernel must pick the same backend as the evaluator.
policy lb4 on xdp {
    pool web = { 10.1.0.1 weight 2, 10.1.0.2, 10.1.0.3 }
    rule vip: ip.dst == 10.1.0.100 and tcp.dport == 80 => balance web by (ip.src, l4.sport), dec ip.ttl, tx
    default pass
    test "flows spread over the pool" {
        send ipv4(src=198.51.100.1, dst=10.1.0.100) / tcp(sport=1000, dport=80)
        expect tx by vip
        send ipv4(src=198.51.100.1, dst=10.1.0.100) / tcp(sport=1001, dport=80)
        expect tx by vip
        send ipv4(src=198.51.100.2, dst=10.1.0.100) / tcp(sport=1000, dport=80)
        expect tx by vip
        send ipv4(src=198.51.100.3, dst=10.1.0.100) / tcp(sport=4242, dport=80) / payload("GET /")
        expect tx by vip
        send ipv4(src=203.0.113.9, dst=10.1.0.100) / tcp(sport=5555, dport=80)
        expect tx by vip
        send ipv4(src=203.0.113.9, dst=10.1.0.100) / udp(sport=5555, dport=80)
        expect pass by default
    }
}

policy lb6 on tc ingress {
    pool api = { 2001:db8::a, 2001:db8::b }
    rule vip6: ipv6.dst == 2001:db8::100 and udp.dport == 53 => balance api by (ip.src, l4.sport, l4.dport), redirect "eth1"
    default pass
    test "ipv6 flows" {
        send ipv6(src=2001:db8:1::1, dst=2001:db8::100) / udp(sport=3333, dport=53)
        expect redirect "eth1" by vip6
        send ipv6(src=2001:db8:1::2, dst=2001:db8::100) / udp(sport=3333, dport=53)
        expect redirect "eth1" by vip6
        send ipv6(src=2001:db8:1::3, dst=2001:db8::100) / udp(sport=9, dport=53)
        expect redirect "eth1" by vip6
    }
}
