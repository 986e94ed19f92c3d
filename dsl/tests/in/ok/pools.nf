# Dynamic pools (`nfcc pool` changes them on a loaded policy) and `sticky` flow tables: as
# declared, they balance exactly as a static pool does.
policy lb_dynamic on xdp {
    pool web: dynamic, capacity 8 = { 10.2.0.1, 10.2.0.2 weight 2, 10.2.0.3 }
    pool one: dynamic = { 10.2.1.1 }
    pool one6: dynamic, capacity 4 = { 2001:db8:2::1 }
    rule vip: ip.dst == 192.0.2.80 and tcp.dport == 80 => balance web by (ip.src, l4.sport) sticky 1K encap gue(6080) from 10.9.9.9, tx
    rule single: ip.dst == 192.0.2.81 => balance one by (ip.src) sticky 16 encap ipip, tx
    rule single6: ipv6.dst == 2001:db8::81 => balance one6 by (ip.src, l4.sport) encap ipip, tx
    default pass

    test "a dynamic pool's one backend" {
        send ipv4(src=198.51.100.1, dst=192.0.2.81) / udp(sport=1, dport=2)
        expect tx by single
        expect out ipv4(src=192.0.2.81, dst=10.2.1.1, proto=4) / ipv4(src=198.51.100.1, dst=192.0.2.81) / udp(sport=1, dport=2)
        send ipv4(src=198.51.100.1, dst=192.0.2.81) / udp(sport=1, dport=2)
        expect tx by single
        expect out ipv4(src=192.0.2.81, dst=10.2.1.1, proto=4) / ipv4(src=198.51.100.1, dst=192.0.2.81) / udp(sport=1, dport=2)
    }

    test "ipv6 in a dynamic pool" {
        send ipv6(src=2001:db8:1::7, dst=2001:db8::81) / tcp(sport=7, dport=80)
        expect tx by single6
        expect out ipv6(src=2001:db8::81, dst=2001:db8:2::1, nexthdr=41) / ipv6(src=2001:db8:1::7) / tcp(sport=7, dport=80)
    }

    test "flows spread and stay" {
        send ipv4(src=198.51.100.1, dst=192.0.2.80) / tcp(sport=1000, dport=80)
        expect tx by vip
        send ipv4(src=198.51.100.2, dst=192.0.2.80) / tcp(sport=1001, dport=80)
        expect tx by vip
        send ipv4(src=198.51.100.3, dst=192.0.2.80) / tcp(sport=1002, dport=80)
        expect tx by vip
        send ipv4(src=198.51.100.1, dst=192.0.2.80) / tcp(sport=1000, dport=80)
        expect tx by vip
    }
}
