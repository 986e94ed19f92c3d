# Regressions found by the random-policy differential test: rewrites of headers that no
# predicate reads were skipped, because the parser only walked layers the predicates needed.
policy rewrite_unread_l4 on tc ingress {
    rule r1: ip.proto != 17 => set l4.dport = 0x50, drop
    default pass
    test "the port is rewritten although no rule reads it" {
        send eth(src=aa:bb:cc:dd:ee:ff, dst=64:8e:ff:70:f5:6b) / ipv4(src=203.0.113.5, dst=198.51.100.7, dscp=45, ecn=3) / tcp(sport=8080, dport=65535, flags=ack, window=0)
        expect drop by r1
    }
}

policy rewrite_on_default on xdp {
    default set l4.sport = 1234, abort
    test "the default's rewrite happens" {
        send ipv4(src=10.1.2.3, dst=252.135.9.177) / tcp(sport=53, dport=8080, flags=fin, seq=122084851, ack=4294967295)
        expect abort by default
        send ipv4(src=10.1.2.3) / udp(sport=53, dport=8080)
        expect abort by default
    }
}
