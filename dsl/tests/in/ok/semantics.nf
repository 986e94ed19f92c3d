# Section 4 semantics that tests rely on, each pinned by a test block.
policy semantics on xdp {
    rule not_ssh: not tcp.dport == 22 and ipv4.dst == 10.0.0.22 => drop
    rule ne_absent: tcp.dport != 22 and ipv4.dst == 10.0.0.23 => drop
    rule v4_only: ip.src in 10.0.0.0/8 => tx
    rule opts: ipv4.ihl == 6 and udp.dport == 53 => drop
    rule l4_after_frag: udp.dport == 9 => drop
    rule frag_any: frag and ipv4.dst == 10.9.9.9 => abort
    rule v6_ext: ipv6.nexthdr == udp and udp.dport == 5353 => drop
    rule v6_deep: ipv6.nexthdr == 60 => abort
    rule qinq: vlan.inner.id == 20 and eth.type == ipv4 => drop
    rule tagged: vlan.id == 10 => pass
    rule short_payload: payload[2..6] == "ABCD" => drop
    rule icmp_echo: icmp.type == 8 => drop
    rule nd: icmpv6.type == 135 => tx
    default pass

    test "not negates the atom: a udp packet is not tcp.dport == 22" {
        send ipv4(dst=10.0.0.22) / udp(dport=22)
        expect drop by not_ssh
        send ipv4(dst=10.0.0.22) / tcp(dport=22)
        expect pass by default
    }
    test "a comparison on an absent header is false, != included" {
        send ipv4(dst=10.0.0.23) / udp(dport=80)
        expect pass by default
        send ipv4(dst=10.0.0.23) / tcp(dport=80)
        expect drop by ne_absent
    }
    test "an ipv4 prefix on ip.src is false for ipv6" {
        send ipv6(src=::ffff:10.0.0.1) / udp()
        expect pass by default
        send ipv4(src=10.1.1.1) / udp()
        expect tx by v4_only
    }
    test "ipv4 options are skipped using ihl" {
        send ipv4(src=192.0.2.1, options=0x01010101) / udp(dport=53)
        expect drop by opts
    }
    test "ihl below 5 means no ipv4 header" {
        send ipv4(src=10.0.0.1, ihl=4) / udp(dport=53)
        expect pass by default
    }
    test "a non-first fragment has no l4 header" {
        send ipv4(src=192.0.2.1, dst=10.9.9.9, frag_offset=100) / udp(dport=9)
        expect abort by frag_any
        send ipv4(src=192.0.2.1, mf=1) / udp(dport=9)
        expect drop by l4_after_frag
    }
    test "ipv6 extension headers are walked" {
        send ipv6() / ipv6ext(kind=hop) / ipv6ext(kind=routing) / ipv6ext(kind=dest) / udp(dport=5353)
        expect drop by v6_ext
        send ipv6() / ipv6ext(kind=hop) / ipv6ext(kind=dest) / ipv6ext(kind=dest) / ipv6ext(kind=dest) / ipv6ext(kind=dest) / ipv6ext(kind=dest) / ipv6ext(kind=dest) / udp(dport=5353)
        expect abort by v6_deep
        send ipv6() / ipv6ext(kind=frag, offset=8) / udp(dport=5353)
        expect pass by default
    }
    test "qinq and the innermost ethertype" {
        send vlan(id=10) / vlan(id=20) / ipv4(src=192.0.2.1) / udp()
        expect drop by qinq
        send vlan(id=10) / ipv4(src=192.0.2.1) / udp()
        expect pass by tagged
    }
    test "truncation removes the header and everything after" {
        send ipv4(src=192.0.2.1) / udp(dport=9) / truncate(40)
        expect pass by default
        send ipv4(src=192.0.2.1) / udp(dport=9) / truncate(42)
        expect drop by l4_after_frag
        send ipv4(src=10.0.0.1) / udp() / truncate(33)
        expect pass by default
    }
    test "payload ranges are half-open and false when short" {
        send ipv4(src=192.0.2.1) / udp(dport=1) / payload("xxABCD")
        expect drop by short_payload
        send ipv4(src=192.0.2.1) / udp(dport=1) / payload("xxABC")
        expect pass by default
    }
    test "icmp and icmpv6 are distinct" {
        send ipv4(src=192.0.2.1) / icmp(type=8)
        expect drop by icmp_echo
        send ipv6() / icmpv6(type=135)
        expect tx by nd
    }
}
