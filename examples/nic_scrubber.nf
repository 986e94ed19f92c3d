# nic_scrubber.nf — a first line of defence that runs entirely on a SmartNIC (`offload nfp`):
# no limiters, redirects, sampling or per-CPU state, sets small enough for the card's maps.
# `nfcc offload-check examples/nic_scrubber.nf` shows every rule on the NIC.
policy nic_scrubber on xdp {
    offload nfp

    set bogons_v4: ipv4 prefix = { 0.0.0.0/8, 10.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16,
                                   172.16.0.0/12, 192.168.0.0/16, 224.0.0.0/4, 240.0.0.0/4 }
    set amplifiers: port = { 19, 123, 389, 1900, 11211 }
    counter scrubbed: key ipv4.src, capacity 16384

    rule bogon_src:  ipv4.src in bogons_v4                => count scrubbed, drop
    # Non-first fragments carry no transport header to judge (iptables' `-f`); a first
    # fragment has one and goes through the rules below like any packet.
    rule fragments:  ip.frag_offset != 0                  => count scrubbed, drop
    rule amplified:  udp.sport in amplifiers              => count scrubbed, drop
    rule null_scan:  tcp.flags == 0                       => drop
    rule xmas_scan:  tcp.flags has fin and tcp.flags has urg and tcp.flags has psh => drop
    default pass

    test "bogon sources are scrubbed and counted" {
        send 2 x ipv4(src=192.168.1.1, dst=203.0.113.10) / udp(sport=5000, dport=53)
        expect 2 x drop by bogon_src
        expect counter scrubbed[192.168.1.1] == 2
    }
    test "amplification replies are dropped" {
        send ipv4(src=198.51.100.7, dst=203.0.113.10) / udp(sport=123, dport=40000)
        expect drop by amplified
    }
    test "scans are dropped, ordinary traffic passes" {
        send ipv4(src=198.51.100.7, dst=203.0.113.10) / tcp(dport=22, flags=0)
        expect drop by null_scan
        send ipv4(src=198.51.100.7, dst=203.0.113.10) / tcp(dport=22, flags=fin|urg|psh)
        expect drop by xmas_scan
        send ipv4(src=198.51.100.7, dst=203.0.113.10) / tcp(dport=443, flags=syn)
        expect pass
        send ipv6(src=2001:db8::1, dst=2001:db8::2) / udp(sport=123, dport=40000)
        expect drop by amplified
    }
    test "non-first fragments are dropped, first fragments judged by their header" {
        send ipv4(src=198.51.100.7, dst=203.0.113.10, frag_offset=10) / udp(dport=53)
        expect drop by fragments
        send ipv6(src=2001:db8::1, dst=2001:db8::2) / ipv6ext(kind=frag, offset=185) / udp(dport=53)
        expect drop by fragments
        send ipv4(src=198.51.100.7, dst=203.0.113.10, mf=1) / udp(sport=123, dport=40000)
        expect drop by amplified
        send ipv6(src=2001:db8::1, dst=2001:db8::2) / ipv6ext(kind=frag, more=1) / udp(sport=53, dport=40000)
        expect pass
    }
}
