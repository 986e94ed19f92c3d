# Benchmark policy (issue 6): drop everything; C equivalent benches/c/drop_all.c.
policy drop_all on xdp {
    default drop

    test "anything is dropped" {
        send ipv4(src=192.0.2.1, dst=198.18.0.2) / udp(sport=1234, dport=53)
        expect drop
    }
}
