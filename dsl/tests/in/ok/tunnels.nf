# Encapsulated packets in test blocks: IP-in-IP and GUE written as nested layers. A policy sees
# the outer headers only (section 4); `expect out` checks every level it names, inner
# checksums included.
policy tunnels on xdp {
    rule ipip: ip.proto == 4 => tx
    rule gue: udp.dport == 6080 => tx
    default drop

    test "ip-in-ip is decided by its outer header and leaves untouched" {
        send ipv4(src=10.9.9.9, dst=10.0.0.2) / ipv4(src=198.51.100.1, dst=192.0.2.80) / tcp(dport=80)
        expect tx by ipip
        expect out ipv4(src=10.9.9.9, proto=4) / ipv4(src=198.51.100.1, dst=192.0.2.80) / tcp(dport=80)
    }

    test "gue over ipv6 leaves untouched" {
        send ipv6(src=2001:db8::9) / udp(sport=49152, dport=6080) / gue() / ipv6(src=2001:db8::1, dst=2001:db8::80) / udp(dport=53)
        expect tx by gue
        expect out ipv6(src=2001:db8::9) / udp(dport=6080) / gue() / ipv6(src=2001:db8::1) / udp(dport=53)
    }

    test "the inner transport header is not the policy's" {
        send ipv4() / ipv4() / udp(dport=6080)
        expect tx by ipip
    }
}
