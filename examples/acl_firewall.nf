# acl_firewall.nf — stateless ACL in front of a server subnet, attached at tc ingress on the
# servers' uplink (so everything seen here is headed for the servers).
#
#   nfcc test examples/acl_firewall.nf
#   nfcc load examples/acl_firewall.nf --iface srv0 --mode tc-ingress
#   nfcc stats acl_firewall

# Our own address space: internal services are open to it only.
const INTERNAL = 10.0.0.0/8

policy acl_firewall on tc ingress {

    set web_ports: port = { 80, 443, 8443 }
    set admin_v4: ipv4 prefix = { 10.0.100.0/24, 192.0.2.10 }
    set admin_v6: ipv6 prefix = { 2001:db8:100::/48 }

    # Change-managed exceptions, checked first: exact 5-tuples with their own verdict.
    table flows: key (ip.src, ip.dst, ip.proto, l4.sport, l4.dport) -> pass | drop, capacity 4096 entries {
        # VXLAN from the hypervisor to the storage gateway.
        (10.30.0.7, 10.20.0.11, udp, 4789, 4789) => pass,
        # Replication between the two database primaries.
        (10.30.0.5, 10.20.0.10, tcp, 5432, 5432) => pass,
        # A scanner that keeps hammering one web server from a fixed source port.
        (198.51.100.23, 10.20.0.10, tcp, 44123, 443) => drop,
    }

    limiter echo_per_src: key ip.src, rate 10/s, burst 5, capacity 16384
    counter denied: key ip.src, capacity 65536

    rule exceptions:  match flows
    rule arp:         arp                                              => pass
    # Neighbour discovery: RS, RA, NS, NA.
    rule nd:          icmpv6.type in {133, 134, 135, 136}              => pass
    # Stateless "established": any segment with ACK set belongs to a running connection.
    rule established: tcp.flags has ack                                => pass
    rule ssh_admin:   tcp.dport == 22 and (ip.src in admin_v4 or ip.src in admin_v6) => pass
    rule ssh_other:   tcp.dport == 22                                  => count denied, drop
    rule web:         tcp.dport in web_ports                           => pass
    rule app:         tcp.dport in {8080, 9000..9100} and ip.src in INTERNAL => pass
    rule dns_ntp:     udp.dport in {53, 123}                           => pass
    rule echo_flood:  icmp.type == 8 and over echo_per_src             => count denied, drop
    # Echo, echo reply, unreachable (PMTU discovery) and time exceeded, v4 and v6.
    rule icmp_ok:     icmp.type in {0, 3, 8, 11} or icmpv6.type in {1, 2, 3, 128, 129} => pass
    rule deny_ip:     ip                                               => count denied, drop
    default drop

    test "established TCP passes from anywhere, v4 and v6" {
        send ipv4(src=203.0.113.9, dst=10.20.0.10) / tcp(sport=443, dport=51000, flags=ack)
        expect pass by established
        send ipv6(src=2001:db8:9::1, dst=2001:db8:20::10) / tcp(sport=443, dport=51000, flags=syn|ack)
        expect pass by established
        # A new connection to a closed port is not established.
        send ipv4(src=203.0.113.9, dst=10.20.0.10) / tcp(sport=51000, dport=3306, flags=syn)
        expect drop by deny_ip
        expect counter denied[203.0.113.9] == 1
    }

    test "SSH only from the admin prefixes" {
        send ipv4(src=10.0.100.7, dst=10.20.0.10) / tcp(sport=50022, dport=22, flags=syn)
        expect pass by ssh_admin
        send ipv4(src=192.0.2.10, dst=10.20.0.10) / tcp(sport=50022, dport=22, flags=syn)
        expect pass by ssh_admin
        send ipv6(src=2001:db8:100::5, dst=2001:db8:20::10) / tcp(sport=50022, dport=22, flags=syn)
        expect pass by ssh_admin
        send ipv4(src=192.0.2.11, dst=10.20.0.10) / tcp(sport=50022, dport=22, flags=syn)
        expect drop by ssh_other
        send ipv4(src=10.0.101.7, dst=10.20.0.10) / tcp(sport=50022, dport=22, flags=syn)
        expect drop by ssh_other
        expect counter denied[10.0.101.7] == 1
    }

    test "service ports: web for everyone, the app range for internal sources only" {
        send ipv4(src=203.0.113.50, dst=10.20.0.10) / tcp(sport=50000, dport=8443, flags=syn)
        expect pass by web
        send ipv4(src=10.9.8.7, dst=10.20.0.12) / tcp(sport=50000, dport=9100, flags=syn)
        expect pass by app
        send ipv4(src=203.0.113.51, dst=10.20.0.12) / tcp(sport=50000, dport=9050, flags=syn)
        expect drop by deny_ip
        # The app range is TCP only.
        send ipv4(src=10.9.8.7, dst=10.20.0.12) / udp(sport=50000, dport=9050)
        expect drop by deny_ip
        send ipv4(src=203.0.113.52, dst=10.20.0.53) / udp(sport=50000, dport=53)
        expect pass by dns_ntp
    }

    test "the exception table wins over the service rules" {
        send ipv4(src=198.51.100.23, dst=10.20.0.10) / tcp(sport=44123, dport=443, flags=syn)
        expect drop by exceptions
        # Same scanner, another source port: an ordinary web connection.
        send ipv4(src=198.51.100.23, dst=10.20.0.10) / tcp(sport=44124, dport=443, flags=syn)
        expect pass by web
        send ipv4(src=10.30.0.7, dst=10.20.0.11) / udp(sport=4789, dport=4789)
        expect pass by exceptions
        send ipv4(src=10.30.0.7, dst=10.20.0.11) / udp(sport=4790, dport=4789)
        expect drop by deny_ip
    }

    test "ICMP echo is rate-limited per source" {
        send 8 x ipv4(src=10.0.5.5, dst=10.20.0.10) / icmp(type=8)
        expect 5 x pass by icmp_ok
        expect 3 x drop by echo_flood
        expect counter denied[10.0.5.5] == 3
        # Unreachables (PMTU discovery) are not limited.
        send 8 x ipv4(src=10.0.5.6, dst=10.20.0.10) / icmp(type=3, code=4)
        expect 8 x pass by icmp_ok
        send ipv4(src=10.0.5.6, dst=10.20.0.10) / icmp(type=13)
        expect drop by deny_ip
    }

    test "ARP, neighbour discovery and VLAN-tagged traffic" {
        send eth(type=arp) / raw(0x00010800060400010200000000010a1400010000000000000a14000a)
        expect pass by arp
        send ipv6(src=fe80::1, dst=ff02::1:ff00:10, hoplimit=255, nexthdr=58) / raw(0x870000000000000020010db8002000000000000000000010)
        expect pass by nd
        send vlan(id=20) / ipv4(src=203.0.113.60, dst=10.20.0.10) / tcp(sport=50000, dport=443, flags=syn)
        expect pass by web
    }

    test "non-first fragments carry no ports and are denied; non-IP is dropped" {
        send ipv4(src=203.0.113.70, dst=10.20.0.10, frag_offset=100) / tcp(sport=443, dport=51000, flags=ack)
        expect drop by deny_ip
        send eth(type=0x88cc) / raw(0x020704000000000001040302000106020078)
        expect drop by default
    }
}
