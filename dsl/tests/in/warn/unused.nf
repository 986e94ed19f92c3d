policy p on xdp {
    set never: ipv4 prefix = { 192.0.2.0/24 }
    counter c: key ip.src
    limiter l: key ip.src, rate 10/s, burst 1
    pool web = { 10.0.0.1 }
    table t: key (ip.src) -> drop entries { (10.0.0.1) => drop }
    rule host_bits: ip.src in 10.1.2.3/8 => drop
    default pass
}
