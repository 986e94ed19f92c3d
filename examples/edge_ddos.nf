# edge_ddos.nf — DDoS guard for an Internet edge router, attached in XDP on the upstream ports
# so that attack traffic dies before it costs an skb.
#
#   nfcc test examples/edge_ddos.nf
#   nfcc load examples/edge_ddos.nf --iface eth0 --mode native
#   nfcc set add edge_ddos block_v4 203.0.113.0/24     # fed by the scrubbing / threat-intel feed
#   nfcc stats edge_ddos
policy edge_ddos on xdp {

    # Dynamic blocklists: the scrubbing pipeline adds and removes prefixes at run time without
    # reloading the program (longest prefix match).
    set block_v4: ipv4 prefix, capacity 262144, dynamic = {
        192.0.2.0/24,
        198.51.100.66,
    }
    set block_v6: ipv6 prefix, capacity 65536, dynamic = {
        2001:db8:bad::/48,
    }

    # UDP services abused for reflection/amplification, seen as the *source* port of the flood:
    # chargen, DNS, NTP, CLDAP, SSDP, memcached.
    set reflect_ports: port = { 19, 53, 123, 389, 1900, 11211 }

    # Our own resolvers and NTP servers: they legitimately receive answers from those ports.
    set infra_v4: ipv4 = { 198.51.100.53, 198.51.100.123 }

    limiter syn_per_src: key ip.src, rate 100/s, burst 50, capacity 64K
    counter drops_by_src: key ip.src, capacity 64K

    rule blocked_v4: ip.src in block_v4                              => count drops_by_src, drop
    rule blocked_v6: ip.src in block_v6                              => count drops_by_src, drop
    # Fragments are the classic vehicle of amplified UDP floods and carry no ports to filter on.
    rule fragments:  frag                                            => count drops_by_src, drop
    rule reflection: udp.sport in reflect_ports and not ip.dst in infra_v4
                                                                     => count drops_by_src, drop
    # SYN and FIN together never happen in a real connection.
    rule syn_fin:    tcp.flags has syn and tcp.flags has fin         => count drops_by_src, drop
    # Connection attempts (SYN without ACK) above 100/s from one source.
    rule syn_flood:  tcp.flags has syn and not tcp.flags has ack and over syn_per_src
                                                                     => count drops_by_src, drop
    default pass

    test "a blocklisted IPv4 source is dropped and counted" {
        send 3 x ipv4(src=192.0.2.77, dst=198.51.100.10) / tcp(sport=40000, dport=443, flags=syn)
        expect 3 x drop by blocked_v4
        expect counter drops_by_src[192.0.2.77] == 3
        send ipv4(src=198.51.100.66, dst=198.51.100.10) / udp(sport=5353, dport=9999)
        expect drop by blocked_v4
        send ipv4(src=198.51.100.67, dst=198.51.100.10) / udp(sport=5353, dport=9999)
        expect pass by default
    }

    test "the IPv6 blocklist only holds IPv6 prefixes" {
        send ipv6(src=2001:db8:bad::42, dst=2001:db8:1::10) / udp(sport=5000, dport=443)
        expect drop by blocked_v6
        expect counter drops_by_src[2001:db8:bad::42] == 1
        send ipv6(src=2001:db8:beef::1, dst=2001:db8:1::10) / tcp(sport=5000, dport=443, flags=ack)
        expect pass by default
    }

    test "fragments are dropped, IPv4 and IPv6" {
        send ipv4(src=203.0.113.9, dst=198.51.100.53, frag_offset=185) / udp(sport=4000, dport=53)
        expect drop by fragments
        send ipv6(src=2001:db8:f00::9, dst=2001:db8:1::10) / ipv6ext(kind=frag, offset=10) / udp(sport=4000, dport=53)
        expect drop by fragments
    }

    test "reflected UDP is dropped unless it is an answer to our infrastructure" {
        send ipv4(src=203.0.113.53, dst=198.51.100.10) / udp(sport=53, dport=33000)
        expect drop by reflection
        send ipv4(src=203.0.113.53, dst=198.51.100.53) / udp(sport=53, dport=33000)
        expect pass by default
        send ipv4(src=203.0.113.11, dst=198.51.100.10) / udp(sport=11211, dport=11211)
        expect drop by reflection
        # DNS over TCP answers are not reflection.
        send ipv4(src=203.0.113.53, dst=198.51.100.10) / tcp(sport=53, dport=33000, flags=ack)
        expect pass by default
        # An IPv6 destination is never in the IPv4 infrastructure set.
        send ipv6(src=2001:db8:77::1, dst=2001:db8:1::10) / udp(sport=123, dport=123)
        expect drop by reflection
    }

    test "VLAN tags and IPv4 options do not hide the UDP header" {
        send vlan(id=100) / ipv4(src=203.0.113.19, dst=198.51.100.10) / udp(sport=1900, dport=40000)
        expect drop by reflection
        send ipv4(src=203.0.113.20, dst=198.51.100.10, ihl=6, options=0x01010101) / udp(sport=123, dport=40000)
        expect drop by reflection
    }

    test "SYN floods are limited per source, other segments are not" {
        send 60 x ipv4(src=203.0.113.200, dst=198.51.100.10) / tcp(sport=41000, dport=443, flags=syn)
        expect 50 x pass by default
        expect 10 x drop by syn_flood
        expect counter drops_by_src[203.0.113.200] == 10
        # Another source has its own bucket.
        send ipv4(src=203.0.113.201, dst=198.51.100.10) / tcp(sport=41000, dport=443, flags=syn)
        expect pass by default
        # SYN-ACKs never reach the limiter.
        send 60 x ipv4(src=203.0.113.202, dst=198.51.100.10) / tcp(sport=443, dport=41000, flags=syn|ack)
        expect 60 x pass by default
    }

    test "SYN+FIN is dropped" {
        send ipv4(src=203.0.113.210, dst=198.51.100.10) / tcp(sport=41000, dport=80, flags=syn|fin)
        expect drop by syn_fin
    }
}
