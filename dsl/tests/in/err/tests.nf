policy p on xdp {
    counter c: key (ip.src, l4.dport)
    rule a: udp => count c, drop
    default pass
    test "bad" {
        expect drop
        send ipv4(src=1.2.3.4, ttl=300) / udp(dport=53)
        send ipv4(sorce=1.2.3.4) / udpp()
        send 2 x ipv4() / udp()
        expect 3 x drop
        expect counter c[1.2.3.4] == 1
        expect counter c[1.2.3.4, 53] == 1
        expect maybe
        send truncate(10) / ipv4()
    }
}
