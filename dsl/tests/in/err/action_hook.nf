policy edge on tc ingress {
    rule a: udp => tx
    rule b: tcp => abort
    default pass
}
policy fast on xdp {
    rule c: udp => mark 7, pass
    rule d: pkt.mark == 1 => drop
    rule e: tcp => count, pass
    default pass
}
