# dns_ratelimit.nf — protects a recursive DNS resolver, attached in XDP on its uplink.
#
# Every client gets a per-source allowance for queries (UDP queries and TCP connection
# attempts to port 53); partner resolvers that forward to us get a much larger one. The ANY
# query for isc.org, a favourite of amplification kits, is dropped outright. One in a hundred
# dropped packets is sampled, so that `nfcc watch dns_ratelimit` shows what is being dropped.
#
#   nfcc test examples/dns_ratelimit.nf
#   nfcc load examples/dns_ratelimit.nf --iface eth0 --mode native
#   nfcc set add dns_ratelimit partners_v4 203.0.113.0/28
policy dns_ratelimit on xdp {

    set partners_v4: ipv4 prefix, capacity 4096, dynamic = { 192.0.2.53, 198.51.100.0/28 }
    set partners_v6: ipv6 prefix, capacity 4096, dynamic = { 2001:db8:53::/48 }

    limiter per_client:  key ip.src, rate 50/s,   burst 20,  capacity 256K
    limiter per_partner: key ip.src, rate 5000/s, burst 100, capacity 4096

    counter dns_drops:   key ip.src, capacity 64K
    counter dns_queries: key ip.src, capacity 64K

    # QNAME isc.org (3 "isc" 3 "org" 0), QTYPE ANY (255), QCLASS IN, right after the 12-byte
    # DNS header.
    rule any_isc:       udp.dport == 53 and payload[12..25] == 0x03697363036f72670000ff0001
                        => count dns_drops, sample 100, drop
    rule partner_flood: l4.dport == 53 and (ip.src in partners_v4 or ip.src in partners_v6)
                        and over per_partner
                        => count dns_drops, sample 100, drop
    rule partner_ok:    l4.dport == 53 and (ip.src in partners_v4 or ip.src in partners_v6)
                        => count dns_queries, pass
    # Over TCP only connection attempts are limited: the segments of an accepted connection
    # are not queries of their own.
    rule client_flood:  (udp.dport == 53 or (tcp.dport == 53 and tcp.flags has syn))
                        and over per_client
                        => count dns_drops, sample 100, drop
    rule client_ok:     l4.dport == 53                              => count dns_queries, pass
    default pass

    test "the ANY query for isc.org is dropped, an A query passes" {
        send ipv4(src=203.0.113.7, dst=198.51.100.53) / udp(sport=33333, dport=53) / payload("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03isc\x03org\x00\x00\xff\x00\x01")
        expect drop by any_isc
        expect counter dns_drops[203.0.113.7] == 1
        send ipv4(src=203.0.113.7, dst=198.51.100.53) / udp(sport=33334, dport=53) / payload("\x12\x35\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03isc\x03org\x00\x00\x01\x00\x01")
        expect pass by client_ok
        # Shorter than the 25 bytes the signature reads: no match.
        send ipv4(src=203.0.113.7, dst=198.51.100.53) / udp(sport=33335, dport=53) / payload("\x12\x36\x01\x00\x00\x01")
        expect pass by client_ok
        expect counter dns_queries[203.0.113.7] == 2
    }

    test "a client above its allowance is dropped" {
        send 25 x ipv4(src=203.0.113.99, dst=198.51.100.53) / udp(sport=40000, dport=53)
        expect 20 x pass by client_ok
        expect 5 x drop by client_flood
        expect counter dns_drops[203.0.113.99] == 5
        expect counter dns_queries[203.0.113.99] == 20
        # IPv6 clients are limited the same way, each source on its own.
        send 25 x ipv6(src=2001:db8:c1::1, dst=2001:db8:53:1::53) / udp(sport=40000, dport=53)
        expect 20 x pass by client_ok
        expect 5 x drop by client_flood
    }

    test "partner resolvers get a bigger allowance, v4 and v6" {
        send 110 x ipv4(src=192.0.2.53, dst=198.51.100.53) / udp(sport=40001, dport=53)
        expect 100 x pass by partner_ok
        expect 10 x drop by partner_flood
        send 30 x ipv4(src=198.51.100.9, dst=198.51.100.53) / udp(sport=40001, dport=53)
        expect 30 x pass by partner_ok
        send 30 x ipv6(src=2001:db8:53::1, dst=2001:db8:53:1::53) / tcp(sport=40001, dport=53, flags=syn)
        expect 30 x pass by partner_ok
    }

    test "over TCP only SYNs count against the allowance" {
        send 25 x ipv4(src=203.0.113.150, dst=198.51.100.53) / tcp(sport=41000, dport=53, flags=syn)
        expect 20 x pass by client_ok
        expect 5 x drop by client_flood
        send 30 x ipv4(src=203.0.113.151, dst=198.51.100.53) / tcp(sport=41000, dport=53, flags=ack|psh)
        expect 30 x pass by client_ok
    }

    test "answers, fragments and tagged frames" {
        # Answers to the resolver's own recursion come from port 53, not to it.
        send ipv4(src=203.0.113.200, dst=198.51.100.53) / udp(sport=53, dport=40000)
        expect pass by default
        # A non-first fragment has no UDP header, hence no port to limit on.
        send ipv4(src=203.0.113.201, dst=198.51.100.53, frag_offset=64) / udp(sport=5000, dport=53)
        expect pass by default
        send vlan(id=53) / ipv4(src=203.0.113.202, dst=198.51.100.53) / udp(sport=40000, dport=53)
        expect pass by client_ok
        expect counter dns_queries[203.0.113.202] == 1
    }
}
