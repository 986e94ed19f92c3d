policy host on xdp {
    set big: ipv4 prefix, capacity 100M, dynamic
    counter c: key ip.src, capacity 20000000
    set small: port, capacity 1 = { 22, 23 }
    rule a: ip.src in big => count c, drop
    rule b: tcp.dport in small => drop
    default pass
}
policy nic on xdp offload nfp {
    set s: ipv4, capacity 1M
    rule a: ip.src in s => drop
    default pass
}
