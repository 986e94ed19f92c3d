# Every construct of the v1 language once, on xdp.
const WEB = 80
const ADMIN = 10.9.0.0/16
const HIGH = 1024..65535

policy everything on xdp {
    set blocked: ipv4 prefix, capacity 64K, dynamic = { 192.0.2.0/24, 198.51.100.7 }
    set blocked6: ipv6 prefix = { 2001:db8:bad::/48 }
    set macs: mac = { 02:00:00:00:00:66 }
    set ports: port = { 22, 3389, 5900..5910 }
    set ids: u16 = { 7, 9 }
    table flows: key (ip.src, ip.dst, ip.proto, l4.dport) -> pass | drop, capacity 1K entries {
        (10.0.0.1, 10.0.0.2, tcp, 443) => pass,
        (10.0.0.1, 10.0.0.3, udp, 53) => drop,
    }
    counter by_src: key ip.src, capacity 10000
    counter by_pair: key (ip.src, l4.dport)
    limiter syn_rate: key ip.src, rate 100/s, burst 10, capacity 100000
    limiter fast: key (ip.src, ip.dst), rate 5/ms, burst 1
    pool web = { 10.1.0.1 weight 2, 10.1.0.2, 10.1.0.3 weight 1 }

    rule frags: frag => drop
    rule bad_mac: eth.src in macs => drop
    rule qinq: vlan.id == 100 and vlan.inner.id in {200, 300..310} and vlan.pcp >= 3 => pass
    rule block: ip.src in blocked or ip.src in blocked6 => count by_src, drop
    rule acl: match flows
    rule ids: ipv4.id in ids and ipv4.ihl > 5 => drop
    rule synflood: tcp.flags has syn and not tcp.flags has ack and over syn_rate => drop
    rule fast: udp.dport == 7 and over fast => drop
    rule http_get: tcp.dport == WEB and payload[0..4] == "GET " => sample 100, count by_pair, pass
    rule magic: udp.dport in HIGH and payload[0..2] == 0xcafe => drop
    rule admin: l4.dport in ports and not ip.src in ADMIN => drop
    rule masked: ipv4.dscp & 0x38 == 0x28 and ipv4.ecn != 3 => pass
    rule lb: ip.dst == 10.1.0.100 and tcp.dport == 80 => balance web by (ip.src, l4.sport), dec ip.ttl, tx
    rule rewrite: ipv6.dst == 2001:db8::80 => set ip.dst = 2001:db8::81, set l4.dport = 8080, set eth.dst = 02:00:00:00:00:02, pass
    rule icmp_unreach: icmp.type == 3 and icmp.code <= 4 => pass
    rule nd: icmpv6.type in 133..136 => pass
    rule flow: ipv6.flowlabel == 0x12345 and ipv6.hoplimit < 2 => abort
    rule len: pkt.len > 1500 or ipv4.len > 1480 or udp.len < 8 => drop
    rule redir: tcp.dport == 9000 and (ip.ttl == 1 or ip.dscp == 46) => redirect "veth9"
    rule arp_only: arp and eth.type == arp => pass
    default count by_src, pass

    test "blocked source is counted and dropped" {
        send ipv4(src=192.0.2.9, dst=10.0.0.1) / udp(sport=1234, dport=80)
        expect drop by block
        expect counter by_src[192.0.2.9] == 1
    }
    test "table entry decides" {
        send ipv4(src=10.0.0.1, dst=10.0.0.3) / udp(dport=53)
        expect drop by acl
        send ipv4(src=10.0.0.1, dst=10.0.0.2) / tcp(dport=443, flags=syn|ack)
        expect pass by acl
    }
    test "syn flood limited" {
        send 15 x ipv4(src=203.0.113.5) / tcp(dport=22, flags=syn)
        expect 10 x drop by admin
        expect 5 x drop by synflood
    }
    test "rewrite keeps checksums valid" {
        send ipv6(dst=2001:db8::80) / tcp(dport=80)
        expect pass by rewrite
        expect out eth(dst=02:00:00:00:00:02) / ipv6(dst=2001:db8::81) / tcp(dport=8080)
    }
    test "fragments and edge packets" {
        send ipv4(frag_offset=10) / udp(dport=53)
        expect drop by frags
        send vlan(id=100) / vlan(id=305, pcp=5) / ipv4(src=10.0.0.1) / udp(dport=53)
        expect pass by default
        send ipv4(src=10.0.0.1) / tcp(dport=80) / payload("GET / HTTP/1.1") / truncate(60)
        expect pass by http_get
        send ipv4(src=10.0.0.1) / tcp(dport=80) / payload("GET / HTTP/1.1") / truncate(56)
        expect pass by default
    }
}

policy shaper on tc egress {
    rule voip: udp.dport in 16384..32767 => set ip.dscp = 46, mark 0x10, pass
    rule marked: pkt.mark == 7 => drop
    default pass
    test "voip gets EF" {
        send ipv4(src=10.0.0.1) / udp(dport=20000)
        expect pass by voip
        expect out ipv4(dscp=46) / udp(dport=20000)
    }
}
