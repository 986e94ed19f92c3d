#!/bin/sh
# Regenerates the corpus dumps with this machine's own iptables (in a throwaway network
# namespace, so the host's rules are untouched). Each dump is what `iptables-save` wrote.
set -e
cd "$(dirname "$0")"
ns=nfcc-corpus-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
run() { ip netns exec "$ns" "$@"; }

# A host firewall as people write by hand: loopback, established, a blocklist chain, services
# for new TCP connections, DNS/NTP/mDNS, null scans, a logging drop chain.
run iptables -P INPUT DROP; run iptables -P FORWARD DROP; run iptables -P OUTPUT ACCEPT
run iptables -N LOGDROP; run iptables -N SERVICES; run iptables -N BLOCKLIST
run iptables -A INPUT -i lo -j ACCEPT
run iptables -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
run iptables -A INPUT -j BLOCKLIST
run iptables -A INPUT -p icmp --icmp-type echo-request -m comment --comment ping -j ACCEPT
run iptables -A INPUT -p tcp --syn -j SERVICES
run iptables -A INPUT -p udp -m multiport --dports 53,123,5353 -j ACCEPT
run iptables -A INPUT -p tcp --tcp-flags ALL NONE -j DROP
run iptables -A INPUT -j LOGDROP
run iptables -A SERVICES -s 10.0.0.0/8 -p tcp --dport 22 -m comment --comment ssh_lan -j ACCEPT
run iptables -A SERVICES -p tcp -m multiport --dports 80,443,8000:8100 -j ACCEPT
run iptables -A SERVICES -j RETURN
run iptables -A BLOCKLIST -s 198.51.100.0/24 -j DROP
run iptables -A BLOCKLIST -s 203.0.113.7 -j DROP
run iptables -A LOGDROP -m limit --limit 5/min -j LOG --log-prefix "dropped: "
run iptables -A LOGDROP -j DROP
run iptables-save | sed '/^# /d' > host_firewall.rules

# The same host's IPv6 side, as ip6tables-save writes it: ICMPv6 neighbour discovery, SSH from
# a documentation prefix, a port range, everything else dropped.
run ip6tables -P INPUT DROP
run ip6tables -A INPUT -i lo -j ACCEPT
run ip6tables -A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT
run ip6tables -A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT
run ip6tables -A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
run ip6tables -A INPUT -s 2001:db8:10::/48 -p tcp --dport 22 -j ACCEPT
run ip6tables -A INPUT ! -s 2001:db8::/32 -p udp --dport 60000:61000 -j ACCEPT
run ip6tables -A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT
run ip6tables-save | sed '/^# /d' > host_firewall_v6.rules

# The host firewall written for nftables (an inet table: both families in one chain), as
# `nft -j list ruleset` prints it.
run nft -f - <<'NFT'
table inet filter {
  set blocked4 { type ipv4_addr; flags interval; elements = { 198.51.100.0/24, 203.0.113.7 } }
  chain services {
    ip saddr 10.0.0.0/8 tcp dport 22 accept comment "ssh_lan"
    tcp dport { 80, 443, 8000-8100 } accept
  }
  chain input {
    type filter hook input priority 0; policy drop;
    iifname "lo" accept
    ct state established,related accept
    ip saddr @blocked4 drop
    icmp type echo-request accept
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, echo-request } accept
    tcp flags & (fin|syn|rst|ack) == syn jump services
    udp dport { 53, 123, 5353 } accept
    meta l4proto udp th dport 60000-61000 accept
    counter drop
  }
}
NFT
run nft -j list ruleset > host_firewall_nft.json

# What ufw (the `ufw` package) writes for a default-deny host with SSH open, PostgreSQL from
# the LAN and telnet denied: its before/after/user chains, conntrack, addrtype and limit
# matches included (those rules are refused).
run sh -c 'ufw --force enable >/dev/null 2>&1; ufw allow 22/tcp >/dev/null; ufw allow from 10.0.0.0/8 to any port 5432 proto tcp >/dev/null; ufw deny 23/tcp >/dev/null'
run iptables-save | sed '/^# /d' > ufw.rules
run ip6tables-save | sed '/^# /d' > ufw_v6.rules

# A host filtering with ipsets (`ipset save` beside the dump): a blocklist of networks, SSH
# for an admin set, DNS for everything not blocked.
run ipset create blocklist hash:net family inet
run ipset add blocklist 198.51.100.0/24
run ipset add blocklist 203.0.113.0/25
run ipset add blocklist 192.0.2.77
run ipset create admins hash:ip family inet
run ipset add admins 10.1.2.3
run ipset add admins 10.1.2.4
run iptables -F INPUT
run iptables -P INPUT DROP
run iptables -A INPUT -m set --match-set blocklist src -j DROP
run iptables -A INPUT -p tcp -m set --match-set admins src -m tcp --dport 22 -j ACCEPT
run iptables -A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT
run iptables -A INPUT -p udp -m set ! --match-set blocklist src --dport 53 -j ACCEPT
run ipset save > ipset_host.ipset
run iptables-save | sed '/^# /d' > ipset_host.rules

# A large one: ClassBench's acl1_1k filter set (../shared/bench-data) as INPUT rules, ACCEPT
# and DROP alternating, restored and saved by iptables itself (942 rules; the rules whose
# ports apply to protocols other than TCP and UDP are left out, as iptables cannot say them).
python3 ../../../benches/scripts/classbench_iptables.py ../../../../shared/bench-data/classbench/acl1_1k > acl1_1k.in
run iptables-restore < acl1_1k.in
run iptables-save | sed '/^# /d' > acl1_1k.rules
rm acl1_1k.in

# A server written the modern nftables way: verdict maps on the destination port (one with a
# jump to a per-service chain), a named verdict map of source networks, and concatenated sets
# of (address, port) pairs for management access, per family.
run nft flush ruleset
run nft -f - <<'NFT'
table inet server {
  set mgmt4 { type ipv4_addr . inet_service; flags interval; elements = { 10.20.0.0/16 . 22, 192.0.2.10 . 9100-9102 } }
  set mgmt6 { type ipv6_addr . inet_service; elements = { 2001:db8:20::5 . 22 } }
  map sources { type ipv4_addr : verdict; flags interval; elements = { 198.51.100.0/24 : drop, 203.0.113.0/28 : accept } }
  chain mail {
    ip saddr 192.0.2.0/24 accept
    ip6 saddr 2001:db8:25::/48 accept
    drop
  }
  chain input {
    type filter hook input priority 0; policy drop;
    ip saddr vmap @sources
    ip saddr . tcp dport @mgmt4 accept
    ip6 saddr . tcp dport @mgmt6 accept
    tcp dport vmap { 80 : accept, 443 : accept, 23 : drop, 25 : jump mail, 587 : jump mail }
    meta l4proto udp udp dport vmap { 53 : accept, 123 : accept, 161-162 : drop }
    ip daddr . udp dport { 10.0.0.53 . 5353, 10.0.0.54 . 5353 } accept
    icmp type vmap { echo-request : accept, timestamp-request : drop }
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, echo-request } accept
  }
}
NFT
run nft -j list ruleset > server_maps_nft.json

# A router: INPUT for the box itself, FORWARD for what it routes (later fragments dropped, a
# bogon source, DNS, ping), and a SERVICES chain both jump to with a RETURN for one network;
# imported per chain and verified where netfilter runs each (`--chain FORWARD`, `SERVICES`).
run iptables -F; run iptables -X; run iptables -P INPUT DROP; run iptables -P FORWARD DROP
run iptables -N SERVICES
run iptables -A INPUT -p tcp --dport 22 -j ACCEPT
run iptables -A INPUT -p icmp -j ACCEPT
run iptables -A INPUT -p tcp -j SERVICES
run iptables -A FORWARD -f -j DROP
run iptables -A FORWARD -s 10.0.0.0/8 -j DROP
run iptables -A FORWARD -p udp --dport 53 -j ACCEPT
run iptables -A FORWARD -p tcp -j SERVICES
run iptables -A FORWARD -p icmp --icmp-type echo-request -j ACCEPT
run iptables -A SERVICES -s 192.0.2.0/24 -j RETURN
run iptables -A SERVICES -p tcp --dport 443 -j ACCEPT
run iptables -A SERVICES -p tcp -m multiport --dports 80,8080 -j ACCEPT
run iptables -A SERVICES -p tcp --dport 25 -j DROP
run iptables-save -t filter | sed '/^# /d' > router.rules

# The same router in nftables: a forward base chain matching later fragments of both families
# (`ip frag-off`, `frag frag-off`) and a regular chain `svc` that input and forward jump to.
run nft flush ruleset
run nft -f - <<'NFT'
table inet filter {
  chain input { type filter hook input priority 0; policy drop;
    tcp dport 22 accept
    jump svc
  }
  chain forward { type filter hook forward priority 0; policy drop;
    ip frag-off & 0x1fff != 0 drop
    frag frag-off != 0 drop
    ip saddr 10.0.0.0/8 drop
    udp dport 53 accept
    meta l4proto tcp jump svc
    icmp type echo-request accept
  }
  chain svc {
    ip saddr 192.0.2.0/24 return
    tcp dport { 80, 443, 8080 } accept
    tcp dport 25 drop
  }
}
NFT
run nft -j list ruleset > router_nft.json
