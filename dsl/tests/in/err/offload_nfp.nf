policy nic on xdp offload nfp {
    limiter l: key ip.src, rate 10/s, burst 5
    set dyn: ipv4 prefix, dynamic
    rule a: over l => drop
    rule b: ip.src in dyn => drop
    rule c: udp => redirect "eth1"
    rule d: pkt.ifindex == 3 => sample 10, drop
    default pass
}
policy nic_tc on tc ingress offload nfp {
    rule m: tcp => mark 7, pass
    default pass
}
policy other on xdp offload fpga {
    default pass
}
