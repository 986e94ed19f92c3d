# `balance ... via fib`: the backend is picked by Maglev, then the kernel's FIB gives the next
# hop's MACs. Without a route (the test runner's loopback forwards nothing) the packet passes
# untouched and the rule's other actions are skipped; runtime/tests/fib.rs checks the routed
# case on a veth with a static neighbour.
policy lb_fib on xdp {
    pool web = { 198.18.77.10, 198.18.77.11 weight 2, 198.18.77.12 }
    pool web6 = { 2001:db8:77::10, 2001:db8:77::11 }
    counter after: key ip.dst
    rule lb:  ipv4.dst == 203.0.113.80 and tcp.dport == 80 => balance web by (ip.src, l4.sport) via fib, count after, tx
    rule lb6: ipv6.dst == 2001:db8::80 and tcp.dport == 80 => balance web6 by (ip.src) via fib, tx
    default pass

    test "no route: the packet passes as it came, nothing counted" {
        send ipv4(src=10.1.1.1, dst=203.0.113.80) / tcp(sport=1234, dport=80)
        expect pass by lb
        expect out ipv4(src=10.1.1.1, dst=203.0.113.80) / tcp(sport=1234, dport=80)
        expect counter after[198.18.77.10] == 0
        send ipv6(src=2001:db8::1, dst=2001:db8::80) / tcp(dport=80)
        expect pass by lb6
        send ipv4(src=10.1.1.1, dst=203.0.113.81) / tcp(dport=80)
        expect pass by default
    }
}
