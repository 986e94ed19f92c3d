# Policies compiled for the NIC (`offload nfp`): the packet vector on the stack, statistics and
# counters by atomic add on plain maps, prefix sets as hashes (a dynamic one with a length
# table), table verdicts made constants, Maglev without `mod`, TC_ACT_UNSPEC for pass on tc.
policy nic_edge on xdp offload nfp {
    set blocked: ipv4 prefix, capacity 4096, dynamic = { 192.0.2.0/24, 198.51.100.7 }
    set bogons: ipv4 prefix = { 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4, 240.0.0.0/4, 100.64.0.0/10 }
    counter by_src: key ip.src, capacity 4096
    table flows: key (ip.src, l4.dport) -> pass | drop, capacity 64 entries {
        (10.0.0.1, 22) => pass,
        (10.0.0.2, 22) => drop,
    }
    pool web = { 10.1.0.1, 10.1.0.2, 10.1.0.3 weight 2 }

    rule blocklist: ip.src in blocked => count by_src, drop
    rule bogon:     ip.src in bogons => drop
    rule exceptions: match flows
    rule ssh:       tcp.dport == 22 => drop
    rule lb:        ipv4.dst == 203.0.113.80 and tcp.dport == 80 => balance web by (ip.src, l4.sport), tx
    rule ttl:       ipv4.ttl < 2 => drop
    rule bounce:    udp.dport == 7 => set l4.dport = 9, set ip.dscp = 10, tx
    default pass

    test "blocked and counted" {
        send 3 x ipv4(src=192.0.2.44, dst=10.0.0.9) / udp(dport=53)
        expect 3 x drop by blocklist
        expect counter by_src[192.0.2.44] == 3
    }
    test "bogons" {
        send ipv4(src=127.0.0.1) / udp()
        expect drop by bogon
        send ipv4(src=100.127.255.255) / udp()
        expect drop by bogon
        send ipv4(src=100.128.0.0, dst=10.0.0.9) / udp(dport=1)
        expect pass
    }
    test "the table decides before the ssh rule" {
        send ipv4(src=10.0.0.1, dst=10.9.9.9) / tcp(dport=22)
        expect pass by exceptions
        send ipv4(src=10.0.0.2, dst=10.9.9.9) / tcp(dport=22)
        expect drop by exceptions
        send ipv4(src=10.0.0.3, dst=10.9.9.9) / tcp(dport=22)
        expect drop by ssh
    }
    test "balanced flows are rewritten and bounced" {
        send ipv4(src=10.7.7.7, dst=203.0.113.80) / tcp(sport=40000, dport=80)
        expect tx by lb
        send ipv4(src=10.7.7.8, dst=203.0.113.80) / tcp(sport=40001, dport=80)
        expect tx by lb
    }
    test "rewrites keep checksums valid" {
        send ipv4(src=10.2.2.2, dst=10.3.3.3) / udp(sport=5, dport=7) / payload("ping")
        expect tx by bounce
        expect out ipv4(src=10.2.2.2, dst=10.3.3.3, dscp=10) / udp(sport=5, dport=9)
        send ipv4(src=10.2.2.2, dst=10.3.3.3, ttl=1) / udp(dport=7)
        expect drop by ttl
    }
}

policy nic_tc on tc ingress offload nfp {
    table allow: key (ip.dst, tcp.dport) -> pass | drop, capacity 16 entries {
        (10.0.0.80, 80) => pass,
        (10.0.0.80, 8080) => drop,
    }
    rule listed:  match allow
    rule no_tcp:  tcp => drop
    default pass

    test "tc verdicts on the NIC" {
        send ipv4(dst=10.0.0.80) / tcp(dport=80)
        expect pass by listed
        send ipv4(dst=10.0.0.80) / tcp(dport=8080)
        expect drop by listed
        send ipv4(dst=10.0.0.81) / tcp(dport=80)
        expect drop by no_tcp
        send ipv4(dst=10.0.0.81) / udp(dport=80)
        expect pass
    }
}
