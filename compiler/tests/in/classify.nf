# Every predicate form the code generator supports, on every header it parses.
policy classify on xdp {
    set blocked: ipv4 prefix, capacity 1024, dynamic = { 192.0.2.0/24, 198.51.100.7 }
    set blocked6: ipv6 prefix = { 2001:db8:bad::/48, 2001:db8:dead::1, 2001:db8:f00::/40, 2001:db8:f01::/64, 2001:db8:f02::/64 }
    set ports: port = { 22, 23, 2323, 3389, 5900 }
    set macs: mac = { 02:00:00:00:00:66, 02:00:00:00:00:77, 02:00:00:00:00:88, 02:00:00:00:00:99, 02:00:00:00:00:aa }
    set small: u8 = { 1, 2 }

    rule bad_mac:   eth.src in macs                                       => drop
    rule qinq:      vlan.id == 100 and vlan.inner.id in 200..210          => drop
    rule tagged:    vlan.id == 7 and vlan.pcp >= 5                        => tx
    rule block4:    ip.src in blocked                                     => drop
    rule block6:    ipv6.src in blocked6                                  => drop
    rule frags:     frag and ipv4.dst == 10.9.9.9                         => abort
    rule mgmt:      l4.dport in ports and not ip.src in 10.0.0.0/8        => drop
    rule ttl:       ip.ttl < 2 or ipv6.hoplimit == 255                    => pass
    rule synonly:   tcp.flags & (syn|ack) == syn and tcp.dport >= 1024    => drop
    rule dscp:      ipv4.dscp == 46 and ipv4.ecn != 0                     => tx
    rule v6flow:    ipv6.flowlabel == 0x12345 and ipv6.dscp in {10, 12}   => drop
    rule v6ext:     ipv6.nexthdr == udp and udp.dport == 5353             => drop
    rule icmp:      icmp.type == 8 and icmp.code == 0 and ipv4.len > 100  => drop
    rule nd:        icmpv6.type in 133..137                               => pass
    rule web:       ip.dst == 2001:db8::80 and tcp.dport in {80, 443}     => tx
    rule seq:       tcp.seq == 0xdeadbeef or tcp.ack >= 0x80000000        => drop
    rule udp_len:   udp.len < 8 and udp.sport != 53                       => drop
    rule proto:     ip.proto in small                                     => drop
    rule arp:       arp and eth.type == arp                               => pass
    rule tiny:      pkt.len < 60 and not eth                              => drop
    default pass

    test "sets and lists" {
        send eth(src=02:00:00:00:00:88) / ipv4() / udp()
        expect drop by bad_mac
        send ipv4(src=192.0.2.200) / udp()
        expect drop by block4
        send ipv4(src=198.51.100.7) / udp()
        expect drop by block4
        send ipv4(src=198.51.100.8) / udp(dport=1)
        expect pass by default
        send ipv6(src=2001:db8:bad:1::5) / udp()
        expect drop by block6
        send ipv6(src=2001:db8:dead::1) / udp()
        expect drop by block6
        send ipv6(src=2001:db8:dead::2) / udp(dport=1)
        expect pass by default
        send ipv4(src=203.0.113.1) / tcp(dport=3389, flags=ack)
        expect drop by mgmt
        send ipv4(src=10.1.1.1) / tcp(dport=3389, flags=ack)
        expect pass by default
    }
    test "vlan tags" {
        send vlan(id=100) / vlan(id=205) / ipv4(src=10.0.0.1) / udp()
        expect drop by qinq
        send vlan(id=100) / ipv4(src=10.0.0.1) / udp()
        expect pass by default
        send vlan(id=7, pcp=6) / ipv4(src=10.0.0.1) / udp()
        expect tx by tagged
    }
    test "ip fields" {
        send ipv4(src=10.0.0.1, dst=10.9.9.9, frag_offset=3) / udp()
        expect abort by frags
        send ipv4(src=10.0.0.1, ttl=1) / udp()
        expect pass by ttl
        send ipv6(hoplimit=255) / udp()
        expect pass by ttl
        send ipv4(src=10.0.0.1, dscp=46, ecn=1) / udp()
        expect tx by dscp
        send ipv4(src=10.0.0.1, dscp=46) / udp()
        expect pass by default
        send ipv6(flowlabel=0x12345, dscp=12) / tcp()
        expect drop by v6flow
        send ipv6() / ipv6ext(kind=hop) / ipv6ext(kind=dest) / udp(dport=5353)
        expect drop by v6ext
        send ipv4(src=10.0.0.1, proto=2) / raw(0x00000000)
        expect drop by proto
    }
    test "l4 fields" {
        send ipv4(src=10.0.0.1) / tcp(dport=8080, flags=syn)
        expect drop by synonly
        send ipv4(src=10.0.0.1) / tcp(dport=8080, flags=syn|ack)
        expect pass by default
        send ipv4(src=10.0.0.1) / icmp(type=8) / payload("0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890")
        expect drop by icmp
        send ipv6() / icmpv6(type=135)
        expect pass by nd
        send ipv6(dst=2001:db8::80) / tcp(dport=443, flags=ack)
        expect tx by web
        send ipv4(src=10.0.0.1) / tcp(dport=1, seq=0xdeadbeef, flags=ack)
        expect drop by seq
        send ipv4(src=10.0.0.1) / tcp(dport=1, ack=0x90000000, flags=ack)
        expect drop by seq
        send ipv4(src=10.0.0.1) / udp(sport=1000, dport=7, len=7)
        expect drop by udp_len
    }
    test "short frames and arp" {
        send eth(type=arp) / raw(0x0001080006040001020000000001c0000201000000000000c0000202)
        expect pass by arp
        send raw(0x0102030405) / truncate(5)
        expect drop by tiny
        send ipv4(src=10.0.0.1) / tcp(dport=22) / truncate(40)
        expect pass by default
    }
}

policy edge_tc on tc ingress {
    rule dns: udp.dport == 53 and ip.src in 10.0.0.0/8 => drop
    rule web6: ipv6 and tcp.dport == 443 => pass
    default drop
    test "tc verdicts" {
        send ipv4(src=10.1.2.3) / udp(dport=53)
        expect drop by dns
        send ipv6() / tcp(dport=443)
        expect pass by web6
        send ipv4(src=192.0.2.1) / udp(dport=53)
        expect drop by default
    }
}
