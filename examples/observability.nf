# observability.nf — traffic accounting and QoS classification on a host's egress, at tc egress.
#
# Nothing is ever dropped: every rule passes. Packets are counted per address pair and per
# destination port, sampled for `nfcc watch`, given a DSCP class and an skb mark that the
# egress qdisc (HTB classes selected by fw filters) uses to schedule them.
#
#   nfcc test examples/observability.nf
#   nfcc load examples/observability.nf --iface eth0 --mode tc-egress
#   nfcc stats observability --watch
policy observability on tc egress {

    counter pairs:    key (ip.src, ip.dst), capacity 64K
    counter by_dport: key l4.dport, capacity 65536

    # SIP and RTP: expedited forwarding (DSCP 46), priority class.
    rule voip:     udp.dport in {5060, 16384..32767}
                   => count pairs, count by_dport, set ip.dscp = 46, mark 46, pass
    # SIP over TLS signalling: CS3.
    rule sip_tls:  tcp.dport == 5061
                   => count pairs, count by_dport, set ip.dscp = 24, mark 24, pass
    # rsync and the backup agents: CS1 (scavenger), low-priority class.
    rule backup:   tcp.dport in {873, 10000..10100}
                   => count pairs, count by_dport, set ip.dscp = 8, mark 0x10, pass
    # Web and QUIC: counted and sampled, class left alone.
    rule web:      tcp.dport in {80, 443} or udp.dport == 443
                   => count pairs, count by_dport, sample 1000, pass
    rule other_l4: l4                                   => count pairs, count by_dport, sample 100, pass
    rule other_ip: ip                                   => count pairs, sample 10, pass
    default pass

    test "VoIP is marked expedited forwarding, IPv4 and IPv6" {
        send ipv4(src=10.0.0.5, dst=203.0.113.20) / udp(sport=20000, dport=5060)
        expect pass by voip
        expect out ipv4(dscp=46)
        expect counter pairs[10.0.0.5, 203.0.113.20] == 1
        expect counter by_dport[5060] == 1
        send ipv6(src=2001:db8:10::5, dst=2001:db8:99::20) / udp(sport=20000, dport=16500)
        expect pass by voip
        expect out ipv6(dscp=46)
        expect counter pairs[2001:db8:10::5, 2001:db8:99::20] == 1
    }

    test "the RTP range is inclusive at both ends" {
        send ipv4(src=10.0.0.6, dst=203.0.113.21) / udp(sport=20000, dport=16384)
        expect pass by voip
        expect out ipv4(dscp=46)
        send ipv4(src=10.0.0.6, dst=203.0.113.21) / udp(sport=20000, dport=32767)
        expect pass by voip
        send ipv4(src=10.0.0.6, dst=203.0.113.21) / udp(sport=20000, dport=32768)
        expect pass by other_l4
        expect out ipv4(dscp=0)
        send ipv4(src=10.0.0.6, dst=203.0.113.21) / udp(sport=20000, dport=16383)
        expect pass by other_l4
        expect counter pairs[10.0.0.6, 203.0.113.21] == 4
    }

    test "VLAN-tagged VoIP is rewritten behind the tag" {
        send vlan(id=42, pcp=5) / ipv4(src=10.0.0.7, dst=203.0.113.22) / udp(sport=20000, dport=17000)
        expect pass by voip
        expect out vlan(id=42) / ipv4(dscp=46)
    }

    test "signalling and backup get their own classes" {
        send ipv4(src=10.0.0.8, dst=203.0.113.23) / tcp(sport=50000, dport=5061, flags=syn)
        expect pass by sip_tls
        expect out ipv4(dscp=24)
        send ipv4(src=10.0.0.8, dst=203.0.113.24) / tcp(sport=50001, dport=873, flags=syn)
        expect pass by backup
        expect out ipv4(dscp=8)
        send ipv4(src=10.0.0.8, dst=203.0.113.24) / tcp(sport=50002, dport=10100, flags=ack)
        expect pass by backup
    }

    test "web traffic is only counted" {
        send 2 x ipv4(src=10.0.0.9, dst=203.0.113.25) / tcp(sport=50003, dport=443, flags=ack)
        expect 2 x pass by web
        expect counter by_dport[443] == 2
        send ipv4(src=10.0.0.9, dst=203.0.113.26) / udp(sport=50004, dport=443)
        expect pass by web
        expect out ipv4(dscp=0)
    }

    test "fragments, truncated headers and ICMP are counted by address pair only" {
        # A non-first fragment has no UDP header: it is not recognised as VoIP.
        send ipv4(src=10.0.0.10, dst=203.0.113.27, frag_offset=100) / udp(sport=20000, dport=5060)
        expect pass by other_ip
        expect out ipv4(dscp=0)
        # Cut inside the UDP header: UDP is absent.
        send ipv4(src=10.0.0.10, dst=203.0.113.27) / udp(sport=20000, dport=5060) / truncate(38)
        expect pass by other_ip
        send ipv4(src=10.0.0.10, dst=203.0.113.27) / icmp(type=8)
        expect pass by other_ip
        expect counter pairs[10.0.0.10, 203.0.113.27] == 3
        send eth(type=arp) / raw(0x00010800060400010200000000010a0000010000000000000a000002)
        expect pass by default
    }
}
