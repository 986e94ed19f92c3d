# Katran-style load balancing: the packet is encapsulated towards its backend (IP-in-IP or GUE),
# the inner packet untouched, the outer header built fresh with a valid checksum.
policy lb_ipip on xdp {
    pool web = { 10.2.0.7 }
    pool web6 = { 2001:db8:2::7 }
    rule vip: ip.dst == 192.0.2.80 and tcp.dport == 80 => count hits, balance web by (ip.src, l4.sport) encap ipip from 10.9.9.9, tx
    rule vip_default_src: ip.dst == 192.0.2.81 => balance web by (ip.src) encap ipip, tx
    rule vip6: ipv6.dst == 2001:db8::80 => balance web6 by (ip.src, l4.sport) encap ipip, tx
    rule wrong_family: ipv6.dst == 2001:db8::99 => balance web by (ip.src) encap ipip, tx
    default pass
    counter hits: key ip.dst

    test "ip-in-ip towards the backend, inner packet untouched" {
        send ipv4(src=198.51.100.1, dst=192.0.2.80, ttl=17, dscp=10) / tcp(sport=4242, dport=80) / payload("GET /")
        expect tx by vip
        expect out ipv4(src=10.9.9.9, dst=10.2.0.7, proto=4, ttl=64, dscp=10) / ipv4(src=198.51.100.1, dst=192.0.2.80, ttl=17) / tcp(sport=4242, dport=80) / payload("GET /")
    }

    test "without from the outer source is the vip" {
        send ipv4(src=198.51.100.2, dst=192.0.2.81) / udp(sport=53, dport=53)
        expect tx by vip_default_src
        expect out ipv4(src=192.0.2.81, dst=10.2.0.7, proto=4) / ipv4(src=198.51.100.2, dst=192.0.2.81) / udp(sport=53, dport=53)
    }

    test "vlan tags stay in front of the outer header" {
        send eth() / vlan(id=7) / ipv4(src=198.51.100.3, dst=192.0.2.81) / tcp(dport=443)
        expect tx by vip_default_src
        expect out eth() / vlan(id=7) / ipv4(src=192.0.2.81, dst=10.2.0.7, proto=4) / ipv4(src=198.51.100.3) / tcp(dport=443)
    }

    test "ipv6 in ipv6" {
        send ipv6(src=2001:db8:1::1, dst=2001:db8::80) / tcp(sport=1000, dport=80)
        expect tx by vip6
        expect out ipv6(src=2001:db8::80, dst=2001:db8:2::7, nexthdr=41, hoplimit=64) / ipv6(src=2001:db8:1::1, dst=2001:db8::80) / tcp(sport=1000, dport=80)
    }

    test "a packet of the other family passes untouched" {
        send ipv6(src=2001:db8:1::1, dst=2001:db8::99) / udp(dport=53)
        expect pass by wrong_family
        expect out ipv6(src=2001:db8:1::1, dst=2001:db8::99) / udp(dport=53)
    }
}

policy lb_gue on xdp {
    pool api = { 10.3.0.1, 10.3.0.2, 10.3.0.3 weight 2 }
    pool one = { 10.3.1.1 }
    pool one6 = { 2001:db8:3::1 }
    rule vip: ip.dst == 192.0.2.90 and udp.dport == 53 => balance api by (ip.src, l4.sport, l4.dport) encap gue(6080) from 10.9.9.9, tx
    rule single: ip.dst == 192.0.2.91 => balance one by (ip.src) encap gue(6080) from 10.9.9.9, tx
    rule single6: ipv6.dst == 2001:db8::91 => balance one6 by (ip.src) encap gue(9999), tx
    default pass

    test "gue towards one backend" {
        send ipv4(src=198.51.100.9, dst=192.0.2.91) / tcp(sport=999, dport=22)
        expect tx by single
        expect out ipv4(src=10.9.9.9, dst=10.3.1.1, proto=17) / udp(dport=6080, checksum=0) / gue() / ipv4(src=198.51.100.9, dst=192.0.2.91) / tcp(sport=999, dport=22)
    }

    test "gue over ipv6" {
        send ipv6(src=2001:db8:1::5, dst=2001:db8::91) / udp(sport=7, dport=7)
        expect tx by single6
        expect out ipv6(src=2001:db8::91, dst=2001:db8:3::1, nexthdr=17) / udp(dport=9999, checksum=0) / gue() / ipv6(src=2001:db8:1::5) / udp(sport=7, dport=7)
    }

    test "flows spread over the pool, each encapsulated" {
        send ipv4(src=198.51.100.1, dst=192.0.2.90) / udp(sport=1000, dport=53)
        expect tx by vip
        send ipv4(src=198.51.100.2, dst=192.0.2.90) / udp(sport=1001, dport=53)
        expect tx by vip
        send ipv4(src=198.51.100.3, dst=192.0.2.90) / udp(sport=1002, dport=53)
        expect tx by vip
        send ipv4(src=203.0.113.4, dst=192.0.2.90) / udp(sport=1003, dport=53) / payload("query")
        expect tx by vip
    }
}

policy lb_tc on tc ingress {
    pool web = { 10.4.0.1 }
    rule vip: ip.dst == 192.0.2.100 => balance web by (ip.src, l4.sport) encap gue(6080) from 10.9.9.9, redirect "eth1"
    rule vip_ipip: ip.dst == 192.0.2.101 => balance web by (ip.src) encap ipip, redirect "eth1"
    default pass

    test "gue on tc" {
        send ipv4(src=198.51.100.1, dst=192.0.2.100) / tcp(sport=5000, dport=80)
        expect redirect "eth1" by vip
        expect out ipv4(src=10.9.9.9, dst=10.4.0.1, proto=17) / udp(dport=6080) / gue() / ipv4(src=198.51.100.1, dst=192.0.2.100) / tcp(sport=5000, dport=80)
    }

    test "ip-in-ip on tc" {
        send ipv4(src=198.51.100.2, dst=192.0.2.101) / udp(sport=5000, dport=80)
        expect redirect "eth1" by vip_ipip
        expect out ipv4(src=192.0.2.101, dst=10.4.0.1, proto=4) / ipv4(src=198.51.100.2) / udp(sport=5000, dport=80)
    }
}
