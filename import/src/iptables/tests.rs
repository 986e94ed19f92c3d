//! The importer on hand-written dumps: each `check` gives a dump and options and expects the
//! policy's rules and default (or the refusal) and the report's counts.

use super::*;
use crate::Report;

fn opts() -> Options {
    Options {
        name: "fw".into(),
        chain: "INPUT".into(),
        xdp: true,
        iface: None,
        sets: Sets::default(),
        skip_unsupported: false,
        source: "test".into(),
        ipv6: false,
    }
}

/// Imports `rules` (the filter table's body after `*filter`) and compares the policy's lines
/// from its first rule to its end with `expect`.
fn check(rules: &str, o: &Options, expect: &str) -> Report {
    let dump = format!("*filter\n{rules}COMMIT\n");
    let got = import(&dump, o).unwrap_or_else(|e| panic!("{e}"));
    let body: Vec<&str> = got
        .nf
        .lines()
        .skip_while(|l| !l.contains("rule not_ipv"))
        .skip(1)
        .map(str::trim)
        .collect();
    assert_eq!(body.join("\n"), expect.trim(), "\n{}", got.nf);
    got.report
}

#[test]
fn rules_policies_and_ports() {
    let r = check(
        ":INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n\
         -A INPUT -p tcp -m tcp --dport 22 -m comment --comment ssh -j ACCEPT\n\
         -A INPUT -s 10.0.0.0/8 -p udp -m multiport --dports 53,1000:2000 -j ACCEPT\n\
         -A INPUT ! -s 192.0.2.1/32 -p tcp -m tcp ! --dport 80 -j DROP\n\
         -A INPUT -p icmp -m icmp --icmp-type 8/0 -j ACCEPT\n\
         -A INPUT -p tcp -m tcp --tcp-flags SYN,RST,ACK,FIN SYN -j ACCEPT\n\
         -A INPUT -p tcp --syn -j DROP\n\
         -A INPUT -p 47\n",
        &opts(),
        "rule ssh: ip.proto == 6 and tcp and tcp.dport == 22 => pass\n\
         rule input_l5: ip.src in 10.0.0.0/8 and ip.proto == 17 and udp and udp.dport in {53, 1000..2000} => pass\n\
         rule input_l6: not ip.src == 192.0.2.1 and ip.proto == 6 and (tcp and not tcp.dport == 80) => drop\n\
         rule input_l7: ip.proto == 1 and icmp and (icmp.type == 8 and icmp.code == 0) => pass\n\
         rule input_l8: ip.proto == 6 and tcp and tcp.flags & (syn|rst|ack|fin) == syn => pass\n\
         rule input_l9: ip.proto == 6 and tcp and tcp.flags & (syn|rst|ack|fin) == syn => drop\n\
         default drop\n}",
    );
    assert_eq!((r.imported(), r.refused(), r.entries.len()), (6, 0, 7));
}

#[test]
fn user_chains_are_inlined_with_return_and_goto_guards() {
    check(
        ":INPUT ACCEPT [0:0]\n:WEB - [0:0]\n:BAD - [0:0]\n\
         -A INPUT -p tcp -j WEB\n\
         -A INPUT -s 198.51.100.0/24 -g BAD\n\
         -A INPUT -p udp -j DROP\n\
         -A WEB -s 192.0.2.0/24 -j RETURN\n\
         -A WEB -p tcp -m tcp --dport 80 -j ACCEPT\n\
         -A BAD -p icmp -j DROP\n",
        &opts(),
        "rule web_l9: ip.proto == 6 and not (ip.src in 192.0.2.0/24) and ip.proto == 6 and tcp and tcp.dport == 80 => pass\n\
         rule bad_l10: ip.src in 198.51.100.0/24 and ip.proto == 1 => drop\n\
         rule input_l7: not (ip.src in 198.51.100.0/24) and ip.proto == 17 => drop\n\
         default pass\n}",
    );
}

#[test]
fn interfaces_sets_and_refusals() {
    let mut o = opts();
    o.sets = crate::ipset::parse("create bl hash:net family inet\nadd bl 203.0.113.0/24\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let rules = ":INPUT DROP [0:0]\n\
         -A INPUT -i lo -j ACCEPT\n\
         -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A INPUT -m set --match-set bl src -j DROP\n\
         -A INPUT -i eth0 -p tcp -m tcp --dport 443 -j ACCEPT\n\
         -A INPUT -p tcp -j REJECT --reject-with tcp-reset\n";
    // Refused rules fail the import unless skipped; `-i eth0` needs --iface.
    let e = import(&format!("*filter\n{rules}COMMIT\n"), &o).err();
    assert!(
        matches!(&e, Some(ImportError::Refused(r)) if r.refused() == 3),
        "{e:?}"
    );
    o.skip_unsupported = true;
    o.iface = Some("eth0".into());
    let r = check(
        rules,
        &o,
        "# refused (line 4): `-m conntrack`: connection tracking state is not in the packet: a stateless filter cannot tell ESTABLISHED or RELATED from NEW (put the policy where replies do not pass, or keep this rule in netfilter)\n\
         #   -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         rule input_l5: ip.src in bl => drop\n\
         rule input_l6: ip.proto == 6 and tcp and tcp.dport == 443 => pass\n\
         # refused (line 7): `-j REJECT`: REJECT answers the sender (ICMP or RST), which a filter on the receive path cannot do; DROP is not the same\n\
         #   -A INPUT -p tcp -j REJECT --reject-with tcp-reset\n\
         default drop\n}",
    );
    assert_eq!((r.imported(), r.refused()), (2, 2));
    assert!(
        r.render()
            .contains("line 3: skipped: `-i lo` never holds on eth0"),
        "{}",
        r.render()
    );
}

#[test]
fn hop_limits_are_ip_ttl() {
    let mut o = opts();
    o.ipv6 = true;
    check(
        ":INPUT DROP [0:0]\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m hl --hl-eq 255 -j ACCEPT\n\
         -A INPUT -m hl ! --hl-lt 2 -j ACCEPT\n",
        &o,
        "rule input_l3: ip.proto == 58 and icmpv6 and icmpv6.type == 135 and ip.ttl == 255 => pass\n\
         rule input_l4: not ip.ttl < 2 => pass\n\
         default drop\n}",
    );
}

#[test]
fn rules_behind_a_refused_jump_are_in_the_report() {
    let mut o = opts();
    o.skip_unsupported = true;
    let rules = ":INPUT DROP [0:0]\n:SVC - [0:0]\n:DEEP - [0:0]\n\
         -A INPUT -m conntrack --ctstate NEW -j SVC\n\
         -A SVC -p tcp -m tcp --dport 22 -j ACCEPT\n\
         -A SVC -j DEEP\n\
         -A DEEP -p udp -j DROP\n";
    let r = check(
        rules,
        &o,
        "# refused (line 5): `-m conntrack`: connection tracking state is not in the packet: a stateless filter cannot tell ESTABLISHED or RELATED from NEW (put the policy where replies do not pass, or keep this rule in netfilter)\n\
         #   -A INPUT -m conntrack --ctstate NEW -j SVC\n\
         default drop\n}",
    );
    let text = r.render();
    // Every line is in the report: the jump refused, and each rule it alone reaches.
    for line in [6, 7, 8] {
        assert!(
            text.contains(&format!(
                "line {line}: refused: `(in chain {})`: reached only through the refused rule at line 5",
                if line == 8 { "DEEP" } else { "SVC" }
            )),
            "{text}"
        );
    }
    assert_eq!((r.imported(), r.refused()), (0, 4));
}

#[test]
fn a_refused_rule_that_cannot_change_a_verdict_is_said_so() {
    let mut o = opts();
    o.skip_unsupported = true;
    let rules = ":INPUT DROP [0:0]\n\
         -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n\
         -A INPUT -m conntrack --ctstate INVALID -j DROP\n\
         -A INPUT -p udp -j DROP\n\
         -A INPUT -m conntrack --ctstate NEW -j ACCEPT\n";
    let e = import(&format!("*filter\n{rules}COMMIT\n"), &o).map(|i| i.report.render());
    let text = e.unwrap_or_else(|e| panic!("{e}"));
    // Line 4 drops like the policy, but line 6 after it accepts: without line 4, a packet
    // both match would be accepted, so line 4 can change a verdict.
    let line4 = text
        .lines()
        .find(|l| l.starts_with("line 4:"))
        .unwrap_or("");
    assert!(
        line4.contains("refused") && !line4.contains("cannot change"),
        "{text}"
    );
    let rules = ":INPUT DROP [0:0]\n\
         -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n\
         -A INPUT -m conntrack --ctstate INVALID -j DROP\n\
         -A INPUT -p udp -j DROP\n";
    let text = import(&format!("*filter\n{rules}COMMIT\n"), &o)
        .map(|i| i.report.render())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains(
            "; it cannot change any verdict: every rule after it and the chain's policy drop too"
        ),
        "{text}"
    );
}

#[test]
fn fragments_are_the_offset_field() {
    check(
        ":INPUT ACCEPT [0:0]\n-A INPUT -f -j DROP\n-A INPUT ! -f -p udp -j DROP\n",
        &opts(),
        "rule input_l3: ip.frag_offset != 0 => drop\n\
         rule input_l4: ip.frag_offset == 0 and ip.proto == 17 => drop\n\
         default pass\n}",
    );
    let v6 = Options {
        ipv6: true,
        skip_unsupported: true,
        ..opts()
    };
    let dump = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -f -j DROP\nCOMMIT\n";
    let got = import(dump, &v6).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        got.report.render().contains("ip6tables has no -f"),
        "{}",
        got.report.render()
    );
}

#[test]
fn the_header_says_which_packets_the_verdicts_hold_for() {
    let dump = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:SERVICES - [0:0]\n\
                -A FORWARD -p tcp -j SERVICES\n-A SERVICES -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";
    let at = |chain: &str| {
        let o = Options {
            chain: chain.into(),
            ..opts()
        };
        import(dump, &o).unwrap_or_else(|e| panic!("{e}"))
    };
    let fwd = at("FORWARD");
    assert_eq!(fwd.traversal, crate::Traversal::Forward);
    assert!(
        fwd.nf
            .contains("FORWARD sees packets routed through this host"),
        "{}",
        fwd.nf
    );
    assert!(!fwd.nf.contains("addressed to this host;"), "{}", fwd.nf);
    let user = at("SERVICES");
    assert_eq!(user.traversal, crate::Traversal::Jumped);
    assert!(
        user.nf.contains("SERVICES is a chain no hook calls"),
        "{}",
        user.nf
    );
    assert_eq!(at("INPUT").traversal, crate::Traversal::Input);
}
