const A0 = 1
const A1 = A0|A0|A0|A0|A0|A0|A0|A0
const A2 = A1|A1|A1|A1|A1|A1|A1|A1
const A3 = A2|A2|A2|A2|A2|A2|A2|A2
const A4 = A3|A3|A3|A3|A3|A3|A3|A3
const A5 = A4|A4|A4|A4|A4|A4|A4|A4
const A6 = A5|A5|A5|A5|A5|A5|A5|A5
const A7 = A6|A6|A6|A6|A6|A6|A6|A6
const A8 = A7|A7|A7|A7|A7|A7|A7|A7
const A9 = A8|A8|A8|A8|A8|A8|A8|A8
const A10 = A9|A9|A9|A9|A9|A9|A9|A9
const A11 = A10|A10|A10|A10|A10|A10|A10|A10
const A12 = A11|A11|A11|A11|A11|A11|A11|A11
const A13 = A12|A12|A12|A12|A12|A12|A12|A12
const A14 = A13|A13|A13|A13|A13|A13|A13|A13
const A15 = A14|A14|A14|A14|A14|A14|A14|A14
const A16 = A15|A15|A15|A15|A15|A15|A15|A15
const GET = 0x00474554
# Regressions found in review: each rule below was once wrongly reported as shadowed, failed to
# parse, or was evaluated differently from what the checker recorded.
policy review on xdp {
    table t1: key (ip.src) -> drop entries { (10.0.0.1) => drop }
    table t2: key (ip.dst) -> tx entries { (10.0.0.2) => tx }
    rule inner: vlan.inner.id in 0..4095 => drop
    rule tagged: vlan => tx
    rule tiny: pkt.len < 14 => tx
    rule flags: tcp.flags & (syn|ack) == syn and tcp.dport == A16 => drop
    rule flags2: tcp.flags & syn|ack == syn|ack => pass
    rule get: payload[0..4] == GET => drop
    rule both: match t1 and match t2
    rule framed: eth => pass
    default pass

    test "a single tag reaches the vlan rule" {
        send vlan(id=5) / ipv4() / udp()
        expect tx by tagged
        send vlan(id=5) / vlan(id=6) / ipv4() / udp()
        expect drop by inner
    }
    test "a frame shorter than ethernet reaches pkt.len" {
        send raw(0x0102030405) / truncate(5)
        expect tx by tiny
    }
    test "flag masks accept unions and a 16-level constant" {
        send ipv4(src=10.0.0.9) / tcp(dport=1, flags=syn)
        expect drop by flags
        send ipv4(src=10.0.0.9) / tcp(dport=1, flags=syn|ack)
        expect pass by flags2
    }
    test "a byte-string constant keeps its leading zero byte" {
        send ipv4(src=10.0.0.9) / udp(dport=7) / payload(0x00474554)
        expect drop by get
        send ipv4(src=10.0.0.9) / udp(dport=7) / payload(0x474554ff)
        expect pass by framed
    }
    test "the rule's own table decides when two tables hit" {
        send ipv4(src=10.0.0.1, dst=10.0.0.2) / udp(dport=9)
        expect drop by both
    }
}
