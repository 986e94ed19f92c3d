# A 5-tuple exception list: twelve consecutive equality rules on the same fields become one
# hash lookup (first match kept for a repeated key: m3 is shadowed by m0 on purpose), between
# ordinary rules that stay as they are.
policy merged_acl on xdp {
    rule early:  udp.dport == 9 => drop
    rule m0:  ip.src == 10.0.0.1 and ip.dst == 10.9.0.1 and tcp.dport == 22 => pass
    rule m1:  ip.src == 10.0.0.2 and ip.dst == 10.9.0.1 and tcp.dport == 22 => drop
    rule m2:  ip.src == 10.0.0.3 and ip.dst == 10.9.0.2 and tcp.dport == 443 => pass
    rule m3:  ip.src == 10.0.0.1 and ip.dst == 10.9.0.1 and tcp.dport == 22 => drop
    rule m4:  ip.src == 10.0.0.4 and ip.dst == 10.9.0.3 and tcp.dport == 80 => tx
    rule m5:  ip.src == 10.0.0.5 and ip.dst == 10.9.0.3 and tcp.dport == 80 => abort
    rule m6:  ip.src == 10.0.0.6 and ip.dst == 10.9.0.3 and tcp.dport == 80 => pass
    rule m7:  ip.src == 10.0.0.7 and ip.dst == 10.9.0.3 and tcp.dport == 80 => drop
    rule m8:  ip.src == 10.0.0.8 and ip.dst == 10.9.0.3 and tcp.dport == 80 => pass
    rule m9:  ip.src == 10.0.0.9 and ip.dst == 10.9.0.3 and tcp.dport == 80 => drop
    rule m10: ip.dst == 10.9.0.4 and tcp.dport == 8080 and ip.src == 10.0.0.10 => pass
    rule m11: ip.src == 2001:db8::1 and ip.dst == 2001:db8::2 and tcp.dport == 22 => drop
    rule late:   tcp.dport == 22 => tx
    default pass

    test "each merged rule decides its own packets, counted under its own name" {
        send ipv4(src=10.0.0.1, dst=10.9.0.1) / tcp(dport=22)
        expect pass by m0
        send ipv4(src=10.0.0.2, dst=10.9.0.1) / tcp(dport=22)
        expect drop by m1
        send ipv4(src=10.0.0.4, dst=10.9.0.3) / tcp(dport=80)
        expect tx by m4
        send ipv4(src=10.0.0.5, dst=10.9.0.3) / tcp(dport=80)
        expect abort by m5
        send ipv4(src=10.0.0.10, dst=10.9.0.4) / tcp(dport=8080)
        expect pass by m10
    }
    test "misses fall through to the rules after the run" {
        send ipv4(src=10.0.0.2, dst=10.9.0.2) / tcp(dport=22)
        expect tx by late
        send ipv4(src=10.0.0.3, dst=10.9.0.2) / udp(dport=443)
        expect pass by default
        send ipv4(src=10.0.0.3, dst=10.9.0.2) / udp(dport=9)
        expect drop by early
    }
    test "ipv6 and truncated packets" {
        send ipv6(src=2001:db8::1, dst=2001:db8::2) / tcp(dport=22)
        expect drop by m11
        send ipv6(src=2001:db8::1, dst=2001:db8::3) / tcp(dport=22)
        expect tx by late
        send ipv4(src=10.0.0.1, dst=10.9.0.1) / tcp(dport=22) / truncate(40)
        expect pass by default
    }
}

# Masked runs: prefixes and flag masks are part of the shape; runs of different shapes sit
# next to each other and each becomes its own lookup in the one shared table.
policy merged_masked on tc ingress {
    rule p0: ip.src in 10.1.0.0/16 and tcp.flags & 0x12 == 0x02 => drop
    rule p1: ip.src in 10.2.0.0/16 and tcp.flags & 0x12 == 0x02 => pass
    rule p2: ip.src in 10.3.0.0/16 and tcp.flags & 0x12 == 0x12 => drop
    rule p3: ip.src in 10.4.0.0/16 and tcp.flags & 0x12 == 0x00 => drop
    rule p4: ip.src in 10.5.0.0/16 and tcp.flags & 0x12 == 0x02 => drop
    rule p5: ip.src in 10.6.0.0/16 and tcp.flags & 0x12 == 0x02 => pass
    rule p6: ip.src in 10.7.0.0/16 and tcp.flags & 0x12 == 0x02 => drop
    rule p7: ip.src in 10.8.0.0/16 and tcp.flags & 0x12 == 0x02 => drop
    rule q0: udp.dport == 53 and ip.ttl == 1 => drop
    rule q1: udp.dport == 53 and ip.ttl == 2 => drop
    rule q2: udp.dport == 123 and ip.ttl == 1 => drop
    rule q3: udp.dport == 123 and ip.ttl == 2 => pass
    rule q4: udp.dport == 53 and ip.ttl == 3 => drop
    rule q5: udp.dport == 53 and ip.ttl == 4 => drop
    rule q6: udp.dport == 53 and ip.ttl == 5 => pass
    rule q7: udp.dport == 53 and ip.ttl == 6 => drop
    default pass

    test "prefix and flag-mask runs" {
        send ipv4(src=10.1.200.3) / tcp(flags=syn)
        expect drop by p0
        send ipv4(src=10.1.200.3) / tcp(flags=syn|ack)
        expect pass by default
        send ipv4(src=10.3.0.1) / tcp(flags=syn|ack|psh)
        expect drop by p2
        send ipv4(src=10.4.9.9) / tcp(flags=fin)
        expect drop by p3
        send ipv4(src=10.2.1.1) / tcp(flags=syn|fin)
        expect pass by p1
        send ipv4(src=10.9.1.1) / tcp(flags=syn)
        expect pass by default
    }
    test "a host-order run" {
        send ipv4(ttl=2) / udp(dport=123)
        expect pass by q3
        send ipv4(ttl=1) / udp(dport=123)
        expect drop by q2
        send ipv6(hoplimit=1) / udp(dport=53)
        expect drop by q0
        send ipv6(hoplimit=7) / udp(dport=53)
        expect pass by default
    }
}
