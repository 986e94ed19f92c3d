# Set representations the compiler chooses by cost: a static blocklist whose /24s expand into
# /32s (one hash probe), a static set with many prefix lengths (LPM trie), a dynamic set (hash
# per length with a run-time length table), a port set with ranges (prefixes of ports), and
# an IPv6 static set with two lengths.
policy prefix_sets on xdp {
    set expand: ipv4 prefix = {
        192.0.2.0/24, 198.51.100.0/24, 203.0.113.7, 203.0.113.9, 10.9.9.9, 100.64.0.0/30,
    }
    set many: ipv4 prefix = {
        10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 169.254.0.0/17,
        11.11.11.0/25, 12.12.12.12/31, 13.13.13.13,
    }
    set dyn: ipv4 prefix, capacity 1024, dynamic = { 198.18.0.0/15, 198.18.5.5, 8.8.8.0/24 }
    set ports: port = { 22, 25, 110..119, 1000..1999, 6000..6063, 31337 }
    set v6: ipv6 prefix = { 2001:db8:1::/48, 2001:db8:2::/48, 2001:db8:3:4::/64, 2001:db8:5::1 }
    set v6_trie: ipv6 prefix = {
        2a00::/16, 2a01:1:100::/40, 2a02:2:2:2::/64, 2a03:3:3:3:3:300::/88, 2a04:4:4:4:4:4:4::/112,
        2a05::5,
    }

    rule expanded: ip.src in expand => drop
    rule tried:    ip.dst in many and udp => drop
    rule dynamic:  ip.src in dyn => tx
    rule by_port:  l4.dport in ports => drop
    rule v6_src:   ip.src in v6 => drop
    rule v6_trie:  ip.dst in v6_trie => drop
    default pass

    test "expanded /24 and /30 members, and their neighbours" {
        send ipv4(src=192.0.2.255, dst=1.1.1.1) / udp()
        expect drop by expanded
        send ipv4(src=198.51.100.0, dst=1.1.1.1) / udp()
        expect drop by expanded
        send ipv4(src=100.64.0.3, dst=1.1.1.1) / udp()
        expect drop by expanded
        send ipv4(src=100.64.0.4, dst=1.1.1.1) / tcp(dport=80)
        expect pass
        send ipv4(src=203.0.113.8, dst=1.1.1.1) / tcp(dport=80)
        expect pass
        send ipv4(src=203.0.113.9, dst=1.1.1.1) / tcp(dport=80)
        expect drop by expanded
    }
    test "trie of many lengths" {
        send ipv4(src=1.1.1.1, dst=172.31.255.255) / udp(dport=53)
        expect drop by tried
        send ipv4(src=1.1.1.1, dst=172.32.0.0) / udp(dport=53)
        expect pass
        send ipv4(src=1.1.1.1, dst=169.254.127.1) / udp(dport=53)
        expect drop by tried
        send ipv4(src=1.1.1.1, dst=169.254.128.1) / udp(dport=53)
        expect pass
        send ipv4(src=1.1.1.1, dst=12.12.12.13) / udp(dport=53)
        expect drop by tried
        send ipv4(src=1.1.1.1, dst=12.12.12.14) / udp(dport=53)
        expect pass
    }
    test "dynamic set probes its listed lengths" {
        send ipv4(src=198.19.255.255, dst=1.1.1.1) / udp()
        expect tx by dynamic
        send ipv4(src=8.8.8.200, dst=1.1.1.1) / udp()
        expect tx by dynamic
        send ipv4(src=8.8.9.1, dst=1.1.1.1) / udp()
        expect pass
    }
    test "port ranges" {
        send ipv4(src=1.1.1.1) / tcp(dport=1999)
        expect drop by by_port
        send ipv4(src=1.1.1.1) / tcp(dport=2000)
        expect pass
        send ipv4(src=1.1.1.1) / udp(dport=6063)
        expect drop by by_port
        send ipv4(src=1.1.1.1) / udp(dport=6064)
        expect pass
        send ipv4(src=1.1.1.1) / udp(dport=31337)
        expect drop by by_port
        send ipv4(src=1.1.1.1) / udp(dport=109)
        expect pass
        send ipv4(src=1.1.1.1) / udp(dport=115)
        expect drop by by_port
    }
    test "ipv6 prefixes" {
        send ipv6(src=2001:db8:2:ffff::1) / udp(dport=9)
        expect drop by v6_src
        send ipv6(src=2001:db8:3:4:ffff::1) / udp(dport=9)
        expect drop by v6_src
        send ipv6(src=2001:db8:3:5::1) / udp(dport=9)
        expect pass
        send ipv6(src=2001:db8:5::1) / udp(dport=9)
        expect drop by v6_src
        send ipv6(src=2001:db8:5::2) / udp(dport=9)
        expect pass
    }
    test "ipv6 prefixes of six lengths stay in a trie" {
        send ipv6(dst=2a00:ffff::1) / udp(dport=9)
        expect drop by v6_trie
        send ipv6(dst=2a01:1:1ff::1) / udp(dport=9)
        expect drop by v6_trie
        send ipv6(dst=2a01:1:200::1) / udp(dport=9)
        expect pass
        send ipv6(dst=2a04:4:4:4:4:4:4:ffff) / udp(dport=9)
        expect drop by v6_trie
        send ipv6(dst=2a05::5) / udp(dport=9)
        expect drop by v6_trie
        send ipv6(dst=2a05::6) / udp(dport=9)
        expect pass
    }
}
