# Found by verifier_property (seed 0x6e66636376657269).
# Bug: a pkt.* field looked up in a set map uses its host-order value, the map holds
# big-endian keys (BPF_PROG_TEST_RUN runs on lo, ifindex 1).
# policy `p141_0`: eval says redirect "eth0" by r2, kernel says pass by default
policy p141_0 on xdp {
    set s5: u64, dynamic = {1}
    rule r2: pkt.ifindex in s5 => redirect "eth0"
    default pass
    test "kernel agrees with the evaluator" {
        send vlan(id=1, pcp=0) / ipv4(src=203.0.113.5, dst=10.0.0.1, ttl=1, id=9356, options=0x01010101) / tcp(sport=35823, dport=58316, flags=ack, window=0) / payload(0x00000000)
        expect redirect "eth0" by r2
    }
}
