# Benchmark policy: a Katran-like balancer hot path over a dynamic pool (backends in maps, two Maglev tables and a selector).
# One VIP (TCP/80), eight backends, a per-VIP counter, IP-in-IP towards the backend, bounced
# out of the arrival port. `nfcc bench` measures benches/c/katran_encap.c beside it in the same
# run (its maps filled with the same VIP and backends); the test block's flows are the traffic.
#   benches/scripts/katran.sh runs all three variants (katran_like, katran_dynamic, katran_sticky).
policy katran_dynamic on xdp {
    pool web: dynamic, capacity 64 = { 10.0.2.11, 10.0.2.12, 10.0.2.13, 10.0.2.14, 10.0.2.15, 10.0.2.16, 10.0.2.17, 10.0.2.18 }
    counter vips: key ip.dst
    rule web: ip.dst == 192.0.2.80 and tcp.dport == 80 => count vips, balance web by (ip.src, l4.sport, l4.dport) encap ipip, tx
    default pass

    test "32 flows to the VIP" {
        send ipv4(src=198.51.100.10, dst=192.0.2.80) / tcp(sport=20000, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.100.11, dst=192.0.2.80) / tcp(sport=20097, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.100.12, dst=192.0.2.80) / tcp(sport=20194, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.100.13, dst=192.0.2.80) / tcp(sport=20291, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.100.14, dst=192.0.2.80) / tcp(sport=20388, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.100.15, dst=192.0.2.80) / tcp(sport=20485, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.100.16, dst=192.0.2.80) / tcp(sport=20582, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.100.17, dst=192.0.2.80) / tcp(sport=20679, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.101.18, dst=192.0.2.80) / tcp(sport=20776, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.101.19, dst=192.0.2.80) / tcp(sport=20873, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.101.20, dst=192.0.2.80) / tcp(sport=20970, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.101.21, dst=192.0.2.80) / tcp(sport=21067, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.101.22, dst=192.0.2.80) / tcp(sport=21164, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.101.23, dst=192.0.2.80) / tcp(sport=21261, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.101.24, dst=192.0.2.80) / tcp(sport=21358, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.101.25, dst=192.0.2.80) / tcp(sport=21455, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.102.26, dst=192.0.2.80) / tcp(sport=21552, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.102.27, dst=192.0.2.80) / tcp(sport=21649, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.102.28, dst=192.0.2.80) / tcp(sport=21746, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.102.29, dst=192.0.2.80) / tcp(sport=21843, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.102.30, dst=192.0.2.80) / tcp(sport=21940, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.102.31, dst=192.0.2.80) / tcp(sport=22037, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.102.32, dst=192.0.2.80) / tcp(sport=22134, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.102.33, dst=192.0.2.80) / tcp(sport=22231, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.103.34, dst=192.0.2.80) / tcp(sport=22328, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.103.35, dst=192.0.2.80) / tcp(sport=22425, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.103.36, dst=192.0.2.80) / tcp(sport=22522, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.103.37, dst=192.0.2.80) / tcp(sport=22619, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.103.38, dst=192.0.2.80) / tcp(sport=22716, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.103.39, dst=192.0.2.80) / tcp(sport=22813, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.103.40, dst=192.0.2.80) / tcp(sport=22910, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
        send ipv4(src=198.51.103.41, dst=192.0.2.80) / tcp(sport=23007, dport=80, flags=ack) / payload("GET / HTTP/1.1")
        expect tx by web
    }
}
