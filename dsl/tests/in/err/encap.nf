policy p on xdp {
    pool web = { 10.0.0.1 }
    pool web6 = { 2001:db8::1 }
    counter c: key ip.src
    rule a: udp.dport == 1 => balance web by (ip.src) encap vxlan, tx
    rule b: udp.dport == 2 => balance web by (ip.src) encap ipip(4), tx
    rule c2: udp.dport == 3 => balance web by (ip.src) encap gue, tx
    rule d: udp.dport == 4 => balance web by (ip.src) encap gue(0), tx
    rule e: udp.dport == 5 => balance web6 by (ip.src) encap ipip from 10.9.9.9, tx
    rule f: udp.dport == 6 => balance web by (ip.src) encap ipip, count c, tx
    rule g: udp.dport == 7 => balance web by (ip.src) sticky 0 encap ipip, tx
    rule h: udp.dport == 8 => balance web by (ip.src) encap gue(6080), pass
    default pass
}
