# ipv6_edge.nf — the Internet edge of an IPv6-only site (2a01:4f8:c0c::/48), in XDP.
#
# Drops IPv4 (ARP still passes for the management segment), drops bogon sources, lets neighbour
# discovery through, and forwards traffic for the site straight to the core-facing port with the
# hop limit decremented, the way a router would. Everything else (BGP, SSH to the router) goes up
# to the kernel.
#
#   nfcc test examples/ipv6_edge.nf
#   nfcc load examples/ipv6_edge.nf --iface up0 --mode native
policy ipv6_edge on xdp {

    # Sources that must never arrive from the Internet.
    set bogons: ipv6 prefix = {
        ::/128,             # unspecified (except for duplicate address detection, see rule nd)
        ::1/128,            # loopback
        ::ffff:0:0/96,      # IPv4-mapped
        100::/64,           # discard-only
        2001:db8::/32,      # documentation
        fc00::/7,           # unique local: ours stay inside
        ff00::/8,           # multicast is never a source
    }

    counter v4_by_src: key ipv4.src, capacity 16384
    counter bogons_by_src: key ipv6.src, capacity 65536

    rule arp_ok:      arp                                                  => pass
    rule no_ipv4:     ipv4                                                 => count v4_by_src, drop
    # Before the bogon check: duplicate address detection sends from ::. A hop limit of 255
    # proves the packet was not routed (RFC 4861), so this cannot be abused from afar.
    rule nd:          icmpv6.type in {133, 134, 135, 136, 137} and ipv6.hoplimit == 255 => pass
    rule bogon_src:   ipv6.src in bogons                                   => count bogons_by_src, drop
    # Only the upper layers the site uses; `no next header` (59) and the rest are dropped.
    # (`ipv6 and` keeps the rule from catching non-IP frames, where the field is absent.)
    rule upper_layer: ipv6 and not ipv6.nexthdr in {tcp, udp, icmpv6, esp} => drop
    # Would expire here: let the kernel answer with ICMPv6 time exceeded.
    rule expiring:    ipv6.hoplimit <= 1                                   => pass
    rule forward:     ipv6.dst in 2a01:4f8:c0c::/48
                      => dec ip.ttl, set eth.src = 02:00:5e:00:01:01, set eth.dst = 02:00:5e:00:02:02,
                         redirect "core0"
    default pass

    test "IPv4 is dropped and counted, ARP passes" {
        send 2 x ipv4(src=198.51.100.14, dst=198.51.100.1) / tcp(sport=40000, dport=179, flags=syn)
        expect 2 x drop by no_ipv4
        expect counter v4_by_src[198.51.100.14] == 2
        send vlan(id=20) / ipv4(src=198.51.100.15, dst=198.51.100.1) / udp(sport=4000, dport=53)
        expect drop by no_ipv4
        send eth(type=arp) / raw(0x0001080006040001020000000001c6336401000000000000c6336402)
        expect pass by arp_ok
    }

    test "bogon sources are dropped" {
        send ipv6(src=fd12:3456:789a::1, dst=2a01:4f8:c0c::80) / tcp(sport=40000, dport=443, flags=syn)
        expect drop by bogon_src
        expect counter bogons_by_src[fd12:3456:789a::1] == 1
        send ipv6(src=::1, dst=2a01:4f8:c0c::80) / udp(sport=4000, dport=53)
        expect drop by bogon_src
        send ipv6(src=2001:db8::5, dst=2a01:4f8:c0c::80) / udp(sport=4000, dport=53)
        expect drop by bogon_src
        send ipv6(src=ff02::1, dst=2a01:4f8:c0c::80) / udp(sport=4000, dport=53)
        expect drop by bogon_src
        send ipv6(src=::ffff:198.51.100.1, dst=2a01:4f8:c0c::80) / udp(sport=4000, dport=53)
        expect drop by bogon_src
        # Fragments are checked like any other packet.
        send ipv6(src=fd00::66, dst=2a01:4f8:c0c::80) / ipv6ext(kind=frag, offset=10) / udp(sport=4000, dport=53)
        expect drop by bogon_src
    }

    test "neighbour discovery passes, including duplicate address detection" {
        send ipv6(src=fe80::1, dst=ff02::1:ff00:10, hoplimit=255, nexthdr=58) / raw(0x87000000000000002a0104f80c0c00000000000000000010)
        expect pass by nd
        send ipv6(src=::, dst=ff02::1:ff00:10, hoplimit=255, nexthdr=58) / raw(0x87000000000000002a0104f80c0c00000000000000000010)
        expect pass by nd
        # The same solicitation after crossing a router is a forgery.
        send ipv6(src=::, dst=ff02::1:ff00:10, hoplimit=64, nexthdr=58) / raw(0x87000000000000002a0104f80c0c00000000000000000010)
        expect drop by bogon_src
    }

    test "traffic for the site is forwarded with the hop limit decremented" {
        send ipv6(src=2600:1f18::10, dst=2a01:4f8:c0c::80, hoplimit=64) / tcp(sport=50000, dport=443, flags=syn)
        expect redirect "core0" by forward
        expect out eth(src=02:00:5e:00:01:01, dst=02:00:5e:00:02:02) / ipv6(hoplimit=63)
        send vlan(id=300) / ipv6(src=2600:1f18::10, dst=2a01:4f8:c0c:1::9, hoplimit=10) / udp(sport=5000, dport=4500)
        expect redirect "core0" by forward
        expect out vlan(id=300) / ipv6(hoplimit=9)
    }

    test "extension headers do not hide the upper layer; unknown upper layers are dropped" {
        send ipv6(src=2600:1f18::10, dst=2a01:4f8:c0c::80) / ipv6ext(kind=routing) / tcp(sport=50000, dport=443, flags=syn)
        expect redirect "core0" by forward
        send ipv6(src=2600:1f18::10, dst=2a01:4f8:c0c::80) / ipv6ext(kind=hop) / ipv6ext(kind=dest) / udp(sport=5000, dport=4500)
        expect redirect "core0" by forward
        send ipv6(src=2600:1f18::10, dst=2a01:4f8:c0c::80, nexthdr=59)
        expect drop by upper_layer
        send ipv6(src=2600:1f18::10, dst=2a01:4f8:c0c::80, nexthdr=132) / raw(0x0b590b5900000000000000000000)
        expect drop by upper_layer
    }

    test "hop limit 1 goes to the kernel, 2 is still forwarded" {
        send ipv6(src=2600:1f18::10, dst=2a01:4f8:c0c::80, hoplimit=1) / udp(sport=33434, dport=33435)
        expect pass by expiring
        send ipv6(src=2600:1f18::10, dst=2a01:4f8:c0c::80, hoplimit=2) / udp(sport=33434, dport=33436)
        expect redirect "core0" by forward
        expect out ipv6(hoplimit=1)
    }

    test "other destinations and non-IP frames go to the kernel" {
        send ipv6(src=2600:1f18::10, dst=2600:1f18::99) / tcp(sport=50000, dport=179, flags=syn)
        expect pass by default
        send eth(type=0x88cc) / raw(0x020704000000000001040302000106020078)
        expect pass by default
    }
}
