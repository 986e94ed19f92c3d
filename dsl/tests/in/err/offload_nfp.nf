policy nic on xdp offload nfp {
    limiter l: key ip.src, rate 10/s, burst 5
    set dyn: ipv4 prefix, dynamic
    rule a: over l => drop
    rule b: ip.src in dyn => drop
    rule c: udp => redirect "eth1"
    default pass
}
policy other on xdp offload fpga {
    default pass
}
