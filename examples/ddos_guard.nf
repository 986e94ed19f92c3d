# ddos_guard.nf — drop known-bad sources, rate-limit DNS, keep SSH on the LAN.
policy ddos_guard on xdp {

    set blocked: ipv4 prefix, capacity 65536, dynamic = {
        192.0.2.0/24,
        198.51.100.7,
    }

    limiter dns_per_src: key ip.src, rate 1000/s, burst 200, capacity 100000
    counter drops_by_src: key ip.src, capacity 10000

    rule no_ipv6:    ipv6                                      => drop
    rule blocklist:  ip.src in blocked                         => count drops_by_src, drop
    rule dns_flood:  udp.dport == 53 and over dns_per_src      => drop
    rule ssh_lan:    tcp.dport == 22 and not ip.src in 10.0.0.0/8 => drop
    default pass

    test "blocked source is dropped" {
        send ipv4(src=192.0.2.9, dst=10.0.0.1) / udp(sport=1234, dport=80)
        expect drop by blocklist
    }
    test "lan ssh passes" {
        send ipv4(src=10.1.2.3, dst=10.0.0.1) / tcp(dport=22, flags=syn)
        expect pass
    }
}
