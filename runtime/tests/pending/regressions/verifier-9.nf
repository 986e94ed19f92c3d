# Found by verifier_property (seed 0x20).
# Bug: a `balance` key is read before an earlier `set ip.dst`; the evaluator hashes the
# rewritten destination, so the two pick different backends.
# policy `p142_0`: eval says redirect "eth0" by r3 out ...0a000001..., kernel out ...c0000209...
policy p142_0 on xdp {
    pool b0 = { 10.0.0.1, 192.0.2.9 }
    rule r3: l4.dport in 0x16..0xa612 => set ip.dst = 10.0.0.2, balance b0 by (ip.dst, l4.dport), redirect "eth0"
    default pass
    test "kernel agrees with the evaluator" {
        send ipv4(src=203.0.113.5, dst=172.16.0.1, dscp=35, ecn=0) / udp(sport=28631, dport=443)
        expect redirect "eth0" by r3
    }
}
