policy p on xdp {
    set blocked: ipv4 prefix = { 192.0.2.0/24 }
    rule a: ip.src in blockd => drop
    rule b: over limitr => drop
    rule c: tcp.dport == HTTP => count nope, drop
    rule d: match blocked => drop
    rule e: tcpp => drop
    default pass
    test "t" {
        send ipv4() / tcp()
        expect drop by nosuchrule
    }
}
