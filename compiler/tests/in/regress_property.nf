# Regressions found by the random-policy property test (kernel verifier and evaluator).
policy mac_range on tc ingress {
    rule r5: eth.dst in {48:cf:9c:a1:81:0f..4e:90:b1:e8:00:8d} => drop
    default pass
    test "a MAC range compares MACs as numbers" {
        send eth(dst=4a:00:00:00:00:01) / ipv4() / udp()
        expect drop by r5
        send eth(dst=4e:90:b1:e8:00:8e) / ipv4() / udp()
        expect pass by default
    }
}

policy pool_twice on xdp {
    pool b0 = { 10.0.0.2 }
    rule r0: ip.proto in 47..136 => balance b0 by (vlan.id, l4.dport, ipv4.proto), tx
    default balance b0 by (ip.src, ipv6.flowlabel), tx
    test "one maglev table serves both balance actions" {
        send ipv4(src=10.9.9.9, proto=47) / raw(0x00000000)
        expect tx by r0
        send ipv4(src=10.9.9.9) / udp()
        expect tx by default
    }
}

policy empty_list_and_payload on tc egress {
    set s0: u8 = {  }
    limiter l: key ip.src, rate 1/s, burst 1
    rule r9: (tcp.sport in {}) and (payload[9..15] == 0x70656e535348) => drop
    rule r10: (not (payload[11..13] == "1.")) and (icmp.code in s0) => drop
    rule r11: over l and udp.dport in {} => drop
    rule r12: udp.dport == 7 and over l => drop
    default pass
    test "never-matching rules generate no unreachable code; limiters before them still run" {
        send ipv4(src=10.0.0.1) / udp(dport=9)
        expect pass by default
        send ipv4(src=10.0.0.1) / udp(dport=7)
        expect drop by r12
    }
}

policy metadata_keys on tc ingress {
    counter c0: key (pkt.mark)
    table t0: key (pkt.len) -> pass | drop entries { (60) => drop }
    rule r0: eth.type != 2054 and udp.dport == 9 => count c0, pass
    rule r5: match t0
    default pass
    test "packet metadata in counter and table keys" {
        send ipv4(src=10.0.0.1) / udp(dport=9)
        expect pass by r0
        expect counter c0[0] == 1
        send ipv4(src=10.0.0.1) / udp(dport=8) / payload("0123456789abcdef12")
        expect drop by r5
    }
}

policy count_after_rewrite on tc ingress {
    counter c2: key l4.sport
    rule r1: not icmpv6 => set tcp.sport = 80, count c2, drop
    default pass
    test "a counter after a rewrite keys on the new value" {
        send ipv6(src=2001:db8::1, dst=2001:db8::2, hoplimit=1) / tcp(sport=1024, dport=54038, flags=psh|ece|cwr, seq=4294967295, ack=2147483648) / payload(0x504f5354202f6c6f67696e)
        expect drop by r1
        expect counter c2[80] == 1
        expect counter c2[1024] == 0
    }
}

policy balance_after_rewrite on xdp {
    pool b0 = { 10.0.0.1, 192.0.2.9 }
    rule r3: l4.dport in 0x16..0xa612 => set ip.dst = 10.0.0.2, balance b0 by (ip.dst, l4.dport), redirect "eth0"
    default pass
    test "balance hashes the rewritten destination" {
        send ipv4(src=203.0.113.5, dst=172.16.0.1, dscp=35, ecn=0) / udp(sport=28631, dport=443)
        expect redirect "eth0" by r3
        send ipv4(src=203.0.113.5, dst=172.16.0.9, ttl=9) / udp(sport=1, dport=80)
        expect redirect "eth0" by r3
    }
}

policy set_two_widths on tc ingress {
    set s1: u64, dynamic = { 8, 60 }
    rule r1: udp.len in s1 => redirect "eth0"
    rule r2: pkt.len in s1 => drop
    default pass
    test "one set, keys of two widths, host-order metadata looked up big-endian" {
        send ipv4(src=10.0.0.1) / udp(dport=5)
        expect redirect "eth0" by r1
        send ipv4(src=10.0.0.1) / tcp(dport=5) / payload("123456")
        expect drop by r2
        send ipv4(src=10.0.0.1) / tcp(dport=5)
        expect pass by default
    }
}
