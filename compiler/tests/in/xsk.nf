# AF_XDP: what userspace must see goes to the AF_XDP socket bound on the packet's receive
# queue (`redirect xsk`); with no socket bound it passes, as libxdp's default program does.
# Test blocks run with a socket bound on every queue.
policy to_userspace on xdp {
    set monitored: ipv4 prefix = { 192.0.2.0/24 }
    counter seen: key (ip.src)
    rule dns:      udp.dport == 53 => redirect xsk
    rule monitors: ip.src in monitored => count seen, redirect xsk
    rule ssh:      tcp.dport == 22 => pass
    default drop

    test "dns and monitored sources go to userspace" {
        send ipv4(src=198.51.100.1) / udp(dport=53)
        expect redirect xsk by dns
        send ipv6() / udp(dport=53)
        expect redirect xsk by dns
        send ipv4(src=192.0.2.7) / tcp(dport=443)
        expect redirect xsk by monitors
        expect counter seen[192.0.2.7] == 1
    }

    test "the rest is filtered in the kernel" {
        send ipv4(src=198.51.100.1) / tcp(dport=22)
        expect pass by ssh
        send ipv4(src=198.51.100.1) / tcp(dport=443)
        expect drop by default
    }
}

# Userspace and another interface in one policy: the verdicts stay apart.
policy mixed on xdp {
    rule copy_out: udp.dport == 4789 => redirect "veth-vx"
    rule inspect:  tcp.dport == 80 => redirect xsk
    default pass

    test "each redirect has its own target" {
        send ipv4() / tcp(dport=80)
        expect redirect xsk by inspect
        send ipv4() / udp(dport=4789)
        expect redirect "veth-vx" by copy_out
    }
}
