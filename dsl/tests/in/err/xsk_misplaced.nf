# `redirect xsk` hands packets to AF_XDP sockets, which receive from XDP only, and is a rule's
# or the default's action, not a table entry's.
policy on_tc on tc ingress {
    rule r: udp.dport == 53 => redirect xsk
    default pass
}

policy in_table on xdp {
    table t: key (ip.src) -> pass | redirect, capacity 8 entries {
        (192.0.2.1) => redirect xsk,
    }
    rule m: match t
    default pass
}
