# Found by offload's equivalence check when `ip.frag_offset` landed: in a program whose packet
# vector lives in a per-CPU map (a counter makes it so), the field was written only for
# fragments, so a packet after a non-first fragment read the fragment's offset.
policy frag_stale on xdp {
    counter later: key ip.src, capacity 1024
    rule later_fragments: ip.frag_offset != 0 => count later, drop
    rule dns: udp.dport == 53 => pass
    default pass

    test "an unfragmented packet after a fragment has offset 0" {
        send ipv4(src=192.0.2.1, dst=198.51.100.1, frag_offset=10) / udp(dport=53)
        expect drop by later_fragments
        send ipv4(src=192.0.2.1, dst=198.51.100.1) / udp(dport=53)
        expect pass by dns
        send ipv6(src=2001:db8::1, dst=2001:db8::2) / ipv6ext(kind=frag, offset=3) / udp(dport=53)
        expect drop by later_fragments
        send ipv6(src=2001:db8::1, dst=2001:db8::2) / udp(dport=53)
        expect pass by dns
        send ipv6(src=2001:db8::1, dst=2001:db8::2) / ipv6ext(kind=frag, offset=3) / udp(dport=53)
        expect drop by later_fragments
        send ipv6(src=2001:db8::1, dst=2001:db8::2) / ipv6ext(kind=frag, more=1) / udp(dport=53)
        expect pass by dns
        expect counter later[2001:db8::1] == 2
    }
}
