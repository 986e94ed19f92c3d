# A Katran-style L4 load balancer in XDP, one arm: packets for the VIPs are encapsulated towards
# a backend chosen by Maglev over the flow's addresses and ports (IP-in-IP for the web VIP, GUE
# for the DNS VIP), the MACs come from the kernel's FIB, and the packet leaves by the port it
# came in on; the backends decapsulate (tunl0, fou) and answer the clients directly.
#
#   nfcc load examples/l4lb.nf --iface eth0
#   nfcc pool list l4lb web
#   nfcc pool add l4lb web 10.0.2.14 weight 2     # live: the Maglev table is rebuilt in place
#   nfcc pool del l4lb web 10.0.2.11              # only 10.0.2.11's flows move
policy l4lb on xdp {
    # Backends change on the loaded program with `nfcc pool`; `sticky` keeps established
    # flows on their backend while the pool changes.
    pool web: dynamic, capacity 64 = { 10.0.2.11, 10.0.2.12, 10.0.2.13 }
    pool dns: dynamic, capacity 16 = { 10.0.3.21, 10.0.3.22 }
    counter vips: key (ip.dst, ip.proto)

    rule web: ip.dst == 192.0.2.80 and tcp.dport in { 80, 443 } => count vips, balance web by (ip.src, l4.sport, l4.dport) sticky 64K encap ipip from 10.0.1.1 via fib, tx
    rule dns: ip.dst == 192.0.2.53 and udp.dport == 53 => count vips, balance dns by (ip.src, l4.sport) encap gue(6080) from 10.0.1.1 via fib, tx
    # Anything else for a VIP is not ours to forward.
    rule vip_other: ip.dst in { 192.0.2.80, 192.0.2.53 } => drop
    default pass

    test "a web flow is encapsulated; without a route to its backend it passes untouched" {
        # Test blocks have no FIB routes, so `via fib` lets the packet pass as it came: the
        # encapsulation itself is shown by the corpus policy dsl/tests/in/ok/encap.nf.
        send ipv4(src=198.51.100.7, dst=192.0.2.80) / tcp(sport=40000, dport=443, flags=syn)
        expect pass by web
        expect out ipv4(src=198.51.100.7, dst=192.0.2.80) / tcp(sport=40000, dport=443)
    }

    test "other traffic for a VIP is dropped, the rest passes" {
        send ipv4(src=198.51.100.7, dst=192.0.2.80) / udp(dport=80)
        expect drop by vip_other
        send ipv4(src=198.51.100.7, dst=203.0.113.5) / tcp(dport=22)
        expect pass by default
    }
}
