# Found by verifier_property (seed 0x20).
# Bug: a counter key is read before the rewrites that precede `count` in the action list;
# the evaluator keys the count by the rewritten packet.
# policy `p22_0`: counter c2[0050] (packets, bytes): eval says (1, 85), kernel says (0, 0)
policy p22_0 on tc ingress {
    counter c2: key l4.sport
    rule r1: not ((icmpv6)) => set tcp.sport = 80, count c2, drop
    default pass
    test "kernel agrees with the evaluator" {
        send ipv6(src=2001:db8::1, dst=2001:db8::2, hoplimit=1) / tcp(sport=1024, dport=54038, flags=psh|ece|cwr, seq=4294967295, ack=2147483648) / payload(0x504f5354202f6c6f67696e)
        expect drop by r1
    }
}
