# Table entries that redirect: the entry's verdict and its target travel together, so one
# table can pass, drop and redirect.
policy steer on xdp {
    table flows: key (ip.dst, l4.dport) -> pass | drop | redirect, capacity 64 entries {
        (10.0.0.80, 80) => redirect "veth-web",
        (10.0.0.80, 8080) => drop,
        (10.0.0.53, 53) => pass,
        (2001:db8::80, 80) => redirect "veth-web",
    }
    rule steered: match flows
    rule web:     tcp.dport == 443 => redirect "veth-web"
    default drop

    test "the entry decides" {
        send ipv4(dst=10.0.0.80) / tcp(dport=80)
        expect redirect "veth-web" by steered
        send ipv4(dst=10.0.0.80) / tcp(dport=8080)
        expect drop by steered
        send ipv4(dst=10.0.0.53) / udp(dport=53)
        expect pass by steered
        send ipv6(dst=2001:db8::80) / tcp(dport=80)
        expect redirect "veth-web" by steered
        send ipv4(dst=10.0.0.81) / tcp(dport=443)
        expect redirect "veth-web" by web
        send ipv4(dst=10.0.0.81) / tcp(dport=80)
        expect drop by default
    }
}

policy steer_tc on tc ingress {
    table t: key (ip.src) -> pass | redirect, capacity 8 entries {
        (192.0.2.1) => redirect "veth-tc",
        (192.0.2.2) => pass,
    }
    rule r: match t
    default drop

    test "tc redirects from a table" {
        send ipv4(src=192.0.2.1) / udp()
        expect redirect "veth-tc" by r
        send ipv4(src=192.0.2.2) / udp()
        expect pass by r
        send ipv4(src=192.0.2.3) / udp()
        expect drop
    }
}
