//! Tests of packet building, parsing and `expect out` checking.
//!
//! Packet literals are written as `.nf`-like strings (`"vlan(id=5) / ipv4(ttl=3) / tcp"`) and
//! turned into [`LayerSpec`]s by a small parser here, so each test reads like the test block it
//! stands for. Known-good checksums were computed with an independent implementation (a
//! Python RFC 1071 sum) and are also cross-checked against `rfc1071` below.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

/// Parses `"ipv4(src=10.0.0.1, ttl=3) / tcp(flags=syn|ack) / payload(\"x\")"` into layer
/// specs, resolving values the way the checker does (flag and extension-kind names, byte
/// strings for `Bytes` arguments).
fn spec(text: &str) -> Vec<LayerSpec> {
    text.split(" / ")
        .map(|layer| {
            let layer = layer.trim();
            let (name, args) = layer.split_once('(').unwrap_or((layer, ")"));
            let kind = LayerKind::from_name(name)
                .unwrap_or_else(|| panic!("test literal has unknown layer {name}"));
            let args = args
                .strip_suffix(')')
                .expect("test literal layer ends with )");
            let mut out = LayerSpec::new(kind);
            for arg in args.split(", ").filter(|a| !a.is_empty()) {
                let (key, value) = arg.split_once('=').unwrap_or(("", arg));
                let ty = arg_schema(kind)
                    .iter()
                    .find(|(n, _)| *n == key)
                    .map(|(_, t)| *t);
                out = out.arg(key, value_of(value, ty));
            }
            out
        })
        .collect()
}

fn value_of(v: &str, ty: Option<ArgType>) -> ArgValue {
    let flag = |f: &str| match f {
        "fin" => 0x01,
        "syn" => 0x02,
        "rst" => 0x04,
        "psh" => 0x08,
        "ack" => 0x10,
        "urg" => 0x20,
        "ece" => 0x40,
        "cwr" => 0x80,
        _ => panic!("test literal has unknown tcp flag {f}"),
    };
    let hex = |h: &str| -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("test hex is valid"))
            .collect()
    };
    if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return ArgValue::Bytes(s.as_bytes().to_vec());
    }
    if let (Some(h), Some(ArgType::Bytes)) = (v.strip_prefix("0x"), ty) {
        return ArgValue::Bytes(hex(h));
    }
    if let Some(h) = v.strip_prefix("0x") {
        return ArgValue::Int(u128::from_str_radix(h, 16).expect("test int is hex"));
    }
    if let Ok(a) = v.parse::<Ipv4Addr>() {
        return ArgValue::Ipv4(a);
    }
    if let Ok(a) = v.parse::<Ipv6Addr>() {
        return ArgValue::Ipv6(a);
    }
    if v.len() == 17 && v.matches(':').count() == 5 {
        let b = hex(&v.replace(':', ""));
        return ArgValue::Mac(b.try_into().expect("six bytes"));
    }
    match (v, ty) {
        ("hop", _) => ArgValue::Int(0),
        ("routing", _) => ArgValue::Int(43),
        ("dest", _) => ArgValue::Int(60),
        ("frag", _) => ArgValue::Int(44),
        (_, Some(ArgType::Flags)) => ArgValue::Int(v.split('|').map(flag).sum()),
        _ => ArgValue::Int(v.parse().unwrap_or_else(|_| panic!("bad test value {v}"))),
    }
}

/// Builds a literal, failing the test with the build error if there is one.
fn frame(text: &str) -> Vec<u8> {
    build(&spec(text)).unwrap_or_else(|e| panic!("build({text}) failed: {e}"))
}

/// Builds and parses a literal; the built frame's checksums must be valid unless `text`
/// deliberately sets or breaks them.
fn check(text: &str) -> (Vec<u8>, Headers) {
    let f = frame(text);
    if !text.contains("checksum=") && !text.contains("len=") && !text.contains("truncate") {
        if let Err(e) = checksums_valid(&f) {
            panic!("{text}: built frame has bad checksums: {e:?}");
        }
    }
    let h = parse_frame(&f);
    (f, h)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 1071 checksum written independently of the module: 16-bit adds with the carry folded
/// back after every word.
fn rfc1071(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for i in (0..data.len()).step_by(2) {
        let hi = u32::from(data[i]) << 8;
        let lo = data.get(i + 1).map_or(0, |b| u32::from(*b));
        sum += hi | lo;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn rd16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

/// Which headers are present, as a bit set, for monotonicity checks.
fn presence(h: &Headers) -> u32 {
    [
        h.eth.is_some(),
        h.vlan.is_some(),
        h.vlan_inner.is_some(),
        h.arp.is_some(),
        h.ipv4.is_some(),
        h.ipv6.is_some(),
        h.tcp.is_some(),
        h.udp.is_some(),
        h.icmp.is_some(),
        h.icmpv6.is_some(),
        h.payload_offset.is_some(),
    ]
    .iter()
    .enumerate()
    .map(|(i, p)| u32::from(*p) << i)
    .sum()
}

#[test]
fn default_udp_frame_is_byte_exact() {
    let (f, h) = check("ipv4 / udp");
    assert_eq!(
        hex(&f),
        "02000000000202000000000108004500001c000000004011f6cdc0000201c00002024e20003500082d85"
    );
    let ip = h.ipv4.expect("ipv4 present");
    let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    assert_eq!(
        (ip.src, ip.dst, ip.ttl, ip.proto, ip.len),
        (src, dst, 64, 17, 28)
    );
    let udp = h.udp.expect("udp present");
    assert_eq!((udp.sport, udp.dport, udp.len), (20000, 53, 8));
    assert_eq!(
        (h.l3_offset, h.l4_offset, h.payload_offset),
        (Some(14), Some(34), Some(42))
    );
}

#[test]
fn default_tcp_frame_is_byte_exact() {
    let (f, h) = check("ipv4 / tcp");
    assert_eq!(
        hex(&f),
        "020000000002020000000001080045000028000000004006f6ccc0000201c00002024e20005000000000\
         0000000050022000bd6e0000"
    );
    let tcp = h.tcp.expect("tcp present");
    assert_eq!(
        (tcp.sport, tcp.dport, tcp.flags, tcp.window, tcp.doff),
        (20000, 80, 0x02, 8192, 5)
    );
    let eth = h.eth.expect("eth present");
    assert_eq!(
        (eth.src, eth.dst, eth.ethertype),
        ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 0x0800)
    );
}

#[test]
fn known_checksums() {
    // The IPv4 header of the classic RFC 1071 worked example, whose checksum is 0xb861.
    let f = build(&spec(&format!(
        "ipv4(src=192.168.0.1, dst=192.168.0.199, df=1) / udp / payload(0x{})",
        "00".repeat(0x73 - 28)
    )))
    .expect("builds");
    assert_eq!(rd16(&f, 14 + 2), 0x73);
    assert_eq!(rd16(&f, 14 + 10), 0xb861);
    // Odd-length TCP payload, IPv6 UDP, ICMP and ICMPv6, against values computed elsewhere.
    assert_eq!(
        rd16(&frame("ipv4 / tcp / payload(\"hello\")"), 34 + 16),
        0x7997
    );
    assert_eq!(
        rd16(&frame("ipv6 / udp / payload(\"abc\")"), 54 + 6),
        0x91ab
    );
    assert_eq!(
        rd16(&frame("ipv4 / icmp / payload(\"ping\")"), 34 + 2),
        0x192f
    );
    assert_eq!(rd16(&frame("ipv6 / icmpv6"), 54 + 2), 0x2448);
}

#[test]
fn checksums_agree_with_independent_implementation() {
    for text in [
        "ipv4(options=0x0102030405) / tcp(options=0x020405b4, flags=syn|ack) / payload(\"abcde\")",
        "vlan(id=7) / ipv4(ttl=1) / udp(sport=1, dport=2) / payload(\"xyz\")",
        "ipv4 / icmp(type=0, id=9, seq=3) / payload(\"odd\")",
    ] {
        let (f, h) = check(text);
        let l3 = h.l3_offset.expect("l3");
        let l4 = h.l4_offset.expect("l4");
        let ip = h.ipv4.expect("ipv4");
        let mut hdr = f[l3..l4].to_vec();
        hdr[10..12].fill(0);
        assert_eq!(ip.checksum, rfc1071(&hdr), "{text}: ipv4 header checksum");
        let mut seg = f[l4..].to_vec();
        let (proto, at) = if h.tcp.is_some() {
            (6, 16)
        } else if h.udp.is_some() {
            (17, 6)
        } else {
            (1, 2)
        };
        let stored = rd16(&seg, at);
        seg[at..at + 2].fill(0);
        let mut data = Vec::new();
        if proto != 1 {
            data.extend(&f[l3 + 12..l3 + 20]);
            data.extend([0, proto]);
            data.extend((seg.len() as u16).to_be_bytes());
        }
        data.extend(&seg);
        assert_eq!(stored, rfc1071(&data), "{text}: l4 checksum");
    }
}

#[test]
fn ipv4_options_set_ihl_and_move_l4() {
    let (f, h) = check("ipv4(options=0x010203) / tcp(dport=22)");
    let ip = h.ipv4.expect("ipv4 present");
    assert_eq!(
        (ip.ihl, ip.options.clone(), ip.len),
        (6, vec![1, 2, 3, 0], 44)
    );
    assert_eq!(h.l4_offset, Some(14 + 24));
    assert_eq!(h.tcp.expect("tcp present").dport, 22);
    assert_eq!(f.len(), 14 + 24 + 20);
}

#[test]
fn bad_ihl_leaves_ipv4_absent() {
    for text in [
        "ipv4(ihl=4) / tcp",
        "ipv4(ihl=0) / udp",
        "ipv4(ihl=15) / udp",
    ] {
        let (_, h) = check(text);
        assert!(
            h.ipv4.is_none() && h.udp.is_none() && h.tcp.is_none(),
            "{text}: {h:?}"
        );
        assert_eq!(h.eth.expect("eth present").ethertype, 0x0800, "{text}");
        assert_eq!(h.l3_offset, None, "{text}");
    }
    // An explicit IHL that the frame does hold is used to find L4, whatever the options say.
    let (_, h) = check("ipv4(ihl=6, proto=17) / raw(0x00000000) / udp(dport=7)");
    assert_eq!(h.udp.map(|u| u.dport), Some(7));
    // Version other than 4 (via a raw frame) also leaves ipv4 absent.
    let mut f = frame("ipv4 / udp");
    f[14] = 0x65;
    assert!(parse_frame(&f).ipv4.is_none());
}

#[test]
fn ipv4_fragments() {
    let (_, h) = check("ipv4(frag_offset=1) / tcp");
    let ip = h.ipv4.expect("ipv4 present");
    assert_eq!((ip.frag_offset, ip.proto, h.frag), (1, 6, true));
    assert!(h.tcp.is_none() && h.l4_offset.is_none() && h.payload_offset.is_none());
    let (_, h) = check("ipv4(mf=1) / udp");
    assert!(
        h.frag && h.udp.is_some(),
        "a first fragment has its L4 header"
    );
    let (_, h) = check("ipv4(df=1) / udp");
    assert!(!h.frag && h.ipv4.expect("ipv4").df);
}

#[test]
fn vlan_and_qinq() {
    let (f, h) = check("vlan(id=5, pcp=3, dei=1) / ipv4 / udp");
    assert_eq!(rd16(&f, 12), 0x8100);
    let tag = h.vlan.expect("vlan present");
    assert_eq!(
        (tag.id, tag.pcp, tag.dei, tag.tpid, tag.ethertype),
        (5, 3, true, 0x8100, 0x0800)
    );
    assert!(h.vlan_inner.is_none() && h.udp.is_some());
    assert_eq!(h.l3_offset, Some(18));

    let (_, h) =
        check("eth(src=aa:bb:cc:dd:ee:ff) / vlan(id=100, tpid=0x88a8) / vlan(id=200) / ipv6 / tcp");
    let eth = h.eth.expect("eth present");
    assert_eq!(
        (eth.src, eth.outer_type, eth.ethertype),
        ([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff], 0x88a8, 0x86dd)
    );
    assert_eq!(h.vlan.map(|t| t.id), Some(100));
    assert_eq!(h.vlan_inner.map(|t| (t.id, t.tpid)), Some((200, 0x8100)));
    assert!(h.tcp.is_some());
    assert_eq!(h.l3_offset, Some(22));
}

#[test]
fn third_vlan_tag_stops_parsing() {
    let (_, h) = check("vlan(id=1) / vlan(id=2) / vlan(id=3) / ipv4 / udp");
    assert_eq!(h.eth.expect("eth present").ethertype, 0x8100);
    assert_eq!(
        (h.vlan.map(|t| t.id), h.vlan_inner.map(|t| t.id)),
        (Some(1), Some(2))
    );
    assert!(h.ipv4.is_none() && h.udp.is_none() && h.l3_offset.is_none());
}

#[test]
fn truncated_vlan_tag_is_absent() {
    let (_, h) = check("vlan(id=9) / ipv4 / udp / truncate(17)");
    assert_eq!(h.eth.expect("eth stays").ethertype, 0x8100);
    assert!(h.vlan.is_none() && h.ipv4.is_none());
    let (_, h) = check("vlan(id=9) / vlan(id=10) / ipv4 / truncate(20)");
    assert_eq!(h.vlan.map(|t| t.id), Some(9));
    assert!(h.vlan_inner.is_none());
    assert_eq!(h.eth.expect("eth stays").ethertype, 0x8100);
}

#[test]
fn ipv6_extension_headers() {
    let text = "ipv6(hoplimit=3) / ipv6ext(kind=hop) / ipv6ext(kind=dest, len=1) / \
                ipv6ext(kind=frag, more=1, id=7) / udp(dport=53)";
    let (f, h) = check(text);
    let ip = h.ipv6.expect("ipv6 present");
    assert_eq!((ip.first_nexthdr, ip.nexthdr, ip.hoplimit), (0, 17, 3));
    let kinds: Vec<u8> = ip.exts.iter().map(|x| x.kind).collect();
    assert_eq!(kinds, [0, 60, 44]);
    assert_eq!(
        (ip.exts[2].more, ip.exts[2].id, ip.exts[1].size()),
        (true, 7, 16)
    );
    assert!(h.frag);
    assert_eq!(h.l4_offset, Some(14 + 40 + 8 + 16 + 8));
    assert_eq!(usize::from(ip.len), f.len() - 54);
    // Hop-by-hop padding is one PadN option covering the rest of the header.
    assert_eq!(hex(&f[54..62]), "3c00010400000000");

    let (_, h) =
        check("ipv6 / ipv6ext(kind=routing, segleft=2) / ipv6ext(kind=frag, offset=5) / tcp");
    let ip = h.ipv6.expect("ipv6 present");
    assert_eq!(
        (ip.exts[0].segleft, ip.exts[1].frag_offset, ip.nexthdr),
        (2, 5, 6)
    );
    assert!(h.frag && h.tcp.is_none() && h.l4_offset.is_none());

    // An atomic fragment (offset 0, M clear) is not a fragment.
    let (_, h) = check("ipv6 / ipv6ext(kind=frag) / udp");
    assert!(!h.frag && h.udp.is_some());
}

#[test]
fn at_most_six_extension_headers() {
    let six = "ipv6 / ipv6ext(kind=hop) / ipv6ext(kind=dest) / ipv6ext(kind=routing) / \
               ipv6ext(kind=dest) / ipv6ext(kind=dest) / ipv6ext(kind=dest)";
    let (_, h) = check(&format!("{six} / tcp"));
    assert_eq!(
        h.ipv6.as_ref().map(|ip| (ip.exts.len(), ip.nexthdr)),
        Some((6, 6))
    );
    assert!(h.tcp.is_some());
    let (_, h) = check(&format!("{six} / ipv6ext(kind=frag) / tcp"));
    let ip = h.ipv6.expect("ipv6 stays present");
    assert_eq!((ip.exts.len(), ip.nexthdr), (6, 44));
    assert!(h.tcp.is_none() && h.l4_offset.is_none());
}

#[test]
fn truncated_extension_header_stops_the_walk() {
    let (_, h) = check("ipv6 / ipv6ext(kind=hop) / ipv6ext(kind=dest, len=2) / udp / truncate(80)");
    let ip = h.ipv6.expect("ipv6 present");
    assert_eq!((ip.exts.len(), ip.nexthdr), (1, 60));
    assert!(h.udp.is_none());
}

#[test]
fn every_truncation_point_is_safe_and_monotone() {
    for text in [
        "vlan(id=1) / vlan(id=2) / ipv6 / ipv6ext(kind=hop) / ipv6ext(kind=frag, more=1) / \
         tcp(options=0x0204) / payload(\"data\")",
        "ipv4(options=0x01010101) / tcp(options=0x01010101) / payload(\"x\")",
        "ipv4 / icmp / payload(\"ab\")",
        "ipv6 / icmpv6",
        "arp",
    ] {
        let full = frame(text);
        let mut last = 0;
        for n in 0..=full.len() {
            let h = parse_frame(&full[..n]);
            let now = presence(&h);
            assert_eq!(now & last, last, "{text}: header vanished at {n} bytes");
            last = now;
            assert_eq!(h.len, n);
            // Neither may panic; their verdicts on cut frames do not matter here.
            let _ = checksums_valid(&full[..n]);
            let _ = check_out(&spec(text), &full[..n]);
        }
    }
    assert_eq!(
        parse_frame(&[0; 13]),
        Headers {
            len: 13,
            ..Headers::default()
        }
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A fixed-seed generator keeps this deterministic; mutating real frames reaches deep paths.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let bases = [
        frame("vlan / ipv6 / ipv6ext(kind=hop) / tcp"),
        frame("ipv4 / udp"),
        frame("ipv6 / icmpv6"),
    ];
    for i in 0..3000 {
        let mut f = bases[i % 3].clone();
        for _ in 0..(next() % 4) {
            let at = (next() as usize) % f.len();
            f[at] = next() as u8;
        }
        f.truncate((next() as usize) % (f.len() + 1));
        let _ = parse_frame(&f);
        let _ = checksums_valid(&f);
        let _ = check_out(&spec("vlan / ipv6 / tcp / payload(\"\")"), &f);
    }
}

#[test]
fn icmp_and_icmpv6() {
    let (_, h) = check("ipv4 / icmp(type=0, code=0, id=1, seq=2) / payload(\"ping\")");
    let i = h.icmp.expect("icmp present");
    assert_eq!((i.icmp_type, i.code, i.id, i.seq), (0, 0, Some(1), Some(2)));
    assert_eq!(h.payload_offset, Some(42));

    let (_, h) = check("ipv6 / icmpv6(type=135)");
    let i = h.icmpv6.expect("icmpv6 present");
    assert_eq!((i.icmp_type, h.ipv6.map(|ip| ip.nexthdr)), (135, Some(58)));
    // The payload starts after the 4-byte message-specific field, as for ICMPv4.
    assert_eq!(h.payload_offset, Some(54 + 8));

    // Four bytes are enough for ICMPv6, not for ICMP.
    let (_, h) = check("ipv6 / icmpv6 / truncate(58)");
    assert_eq!(h.icmpv6.map(|i| (i.id, i.seq)), Some((None, None)));
    let (_, h) = check("ipv4 / icmp / truncate(41)");
    assert!(h.icmp.is_none() && h.ipv4.is_some());

    // The wrong ICMP for the IP version is absent.
    let (_, h) = check("ipv6 / icmp");
    assert!(h.icmp.is_none() && h.icmpv6.is_none() && h.payload_offset.is_none());
    let (_, h) = check("ipv4 / icmpv6");
    assert!(h.icmp.is_none() && h.icmpv6.is_none());
}

#[test]
fn arp() {
    let (f, h) = check("arp(op=2, spa=10.0.0.1, tpa=10.0.0.2, tha=ff:ff:ff:ff:ff:ff)");
    assert_eq!((f.len(), rd16(&f, 12)), (42, 0x0806));
    let a = h.arp.expect("arp present");
    assert_eq!(
        (a.op, a.spa, a.tpa, a.tha),
        (
            2,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            [0xff; 6]
        )
    );
    assert_eq!(h.l3_offset, Some(14));
    assert!(parse_frame(&f[..41]).arp.is_none());
}

#[test]
fn tcp_data_offset_rules() {
    let (_, h) = check("ipv4 / tcp(doff=4)");
    assert!(h.tcp.is_none() && h.ipv4.is_some());
    let (_, h) = check("ipv4 / tcp(doff=15)");
    assert!(h.tcp.is_none(), "the options doff claims are not there");
    let (_, h) = check("ipv4 / tcp(options=0x020405b4, flags=syn|ack|ece) / payload(\"x\")");
    let t = h.tcp.expect("tcp present");
    assert_eq!((t.doff, t.flags, t.options), (6, 0x52, vec![2, 4, 5, 0xb4]));
    assert_eq!(h.payload_offset, Some(34 + 24));
}

#[test]
fn eth_defaults_and_explicit_fields() {
    let (f, h) = check("eth(type=0x88b5) / raw(0x0102)");
    assert_eq!(hex(&f[12..]), "88b50102");
    assert!(h.ipv4.is_none() && h.l3_offset.is_none());
    let (f, _) = check("eth(dst=ff:ff:ff:ff:ff:ff, type=0x0800) / ipv6 / udp");
    assert_eq!(
        (hex(&f[..6]), rd16(&f, 12)),
        ("ffffffffffff".to_string(), 0x0800)
    );
    let (f, h) = check("ipv4(tos=0xff, dscp=10) / udp");
    assert_eq!(
        (f[15], h.ipv4.map(|ip| (ip.dscp, ip.ecn))),
        (0x2b, Some((10, 3)))
    );
    let (_, h) = check("ipv6(dscp=46, ecn=1, flowlabel=0xabcde) / udp");
    let ip = h.ipv6.expect("ipv6");
    assert_eq!((ip.dscp, ip.ecn, ip.flowlabel), (46, 1, 0xabcde));
    let (_, h) = check("ipv6 / payload(\"z\")");
    assert_eq!(h.ipv6.map(|ip| ip.nexthdr), Some(59));
}

#[test]
fn explicit_lengths_and_checksums_are_written_as_given() {
    let (f, h) = check("ipv4(len=1000, checksum=0x1234) / udp(len=3, checksum=0)");
    assert_eq!(
        (rd16(&f, 16), rd16(&f, 24), rd16(&f, 38), rd16(&f, 40)),
        (1000, 0x1234, 3, 0)
    );
    assert!(
        h.udp.is_some(),
        "L4 is bounded by the frame, not the length fields"
    );
}

#[test]
fn build_errors() {
    let err = |text: &str| build(&spec(text)).expect_err(text).to_string();
    assert_eq!(err("tcp(bogus=1)"), "tcp has no argument `bogus`");
    assert_eq!(
        err("ipv4(src=2001:db8::1)"),
        "ipv4 argument `src` must be an ipv4 address, not `2001:db8::1`"
    );
    assert_eq!(
        err("ipv4(ttl=256)"),
        "ipv4 argument `ttl` is 256, which does not fit in 8 bits"
    );
    assert_eq!(err("tcp / ipv4"), "tcp cannot follow eth");
    assert_eq!(
        err("ipv4 / payload(\"x\") / tcp"),
        "tcp cannot follow payload"
    );
    assert_eq!(
        err("ipv4 / ipv6ext(kind=hop)"),
        "ipv6ext cannot follow ipv4"
    );
    assert_eq!(err("ipv4 / eth"), "eth must be the first layer");
    assert_eq!(
        err("truncate(10) / ipv4"),
        "truncate must be the last layer"
    );
    assert_eq!(
        err("ipv4 / truncate(35)"),
        "truncate(35) is longer than the 34-byte frame"
    );
    assert_eq!(err("truncate"), "truncate needs a value");
    assert_eq!(err("ipv6 / ipv6ext"), "ipv6ext needs the argument `kind`");
    assert_eq!(
        err("ipv6 / ipv6ext(kind=hop, offset=1)"),
        "ipv6ext argument `offset` does not apply to extension header kind 0"
    );
    assert_eq!(
        err("udp(sport=1, sport=2)"),
        "udp argument `sport` is given twice"
    );
    let long = format!("ipv4(options=0x{})", "01".repeat(41));
    assert!(err(&long).starts_with("ipv4 options take 44 bytes"));
    let huge = format!("ipv4 / udp / payload(0x{})", "00".repeat(65536));
    assert_eq!(
        err(&huge),
        "udp length 65544 does not fit in its 16-bit field"
    );
    let bad_kind = [
        LayerSpec::new(LayerKind::Ipv6),
        LayerSpec::new(LayerKind::Ipv6Ext).arg("kind", ArgValue::Int(17)),
    ];
    assert_eq!(build(&bad_kind), Err(BuildError::BadExtKind(17)));
    // An explicit IHL lets long options through, for making bad packets.
    assert!(build(&spec(&format!(
        "ipv4(ihl=15, options=0x{})",
        "01".repeat(44)
    )))
    .is_ok());
}

#[test]
fn layer_names_round_trip() {
    for kind in LayerKind::ALL {
        assert_eq!(LayerKind::from_name(kind.name()), Some(kind));
    }
    assert_eq!(LayerKind::from_name("ip"), None);
}

#[test]
fn check_out_accepts_what_build_wrote() {
    for text in [
        "eth(src=aa:bb:cc:dd:ee:ff, type=0x8100) / vlan(id=5, pcp=1, dei=1) / \
         ipv4(dst=10.0.0.9, ttl=3, tos=4, id=7, df=1, options=0x0102) / \
         tcp(flags=syn|ack, seq=5, ack=6, urg=1, options=0x01) / payload(\"hi\")",
        "vlan(tpid=0x88a8, id=1) / vlan(id=2, type=0x86dd) / \
         ipv6(src=2001:db8::9, nexthdr=0, flowlabel=5) / ipv6ext(kind=hop, len=1) / \
         ipv6ext(kind=routing, segleft=1) / udp(sport=1) / payload(\"q\")",
        "ipv6 / ipv6ext(kind=frag, id=3) / icmpv6(type=129, id=4, seq=5)",
        "ipv4 / icmp(type=3, code=1) / payload(0x4500)",
        "arp(op=2, sha=02:00:00:00:00:09)",
        "eth(type=0x88b5) / raw(0x0102) / payload(\"x\")",
    ] {
        let f = frame(text);
        assert_eq!(check_out(&spec(text), &f), Ok(()), "{text}");
    }
}

#[test]
fn check_out_reports_mismatches() {
    let f = frame("vlan(id=5) / ipv4(dst=10.0.0.1) / tcp(dport=80) / payload(\"GET \")");
    let want = "vlan(id=6) / ipv4(dst=10.0.0.9, ttl=64) / tcp(dport=80, flags=syn|ack) / \
                payload(\"PUT \")";
    let errs = check_out(&spec(want), &f).expect_err("mismatches");
    assert_eq!(
        errs,
        [
            "vlan.id: expected 6, got 5",
            "ipv4.dst: expected 10.0.0.9, got 10.0.0.1",
            "tcp.flags: expected 0x12, got 0x2",
            "payload: expected 0x50555420, got 0x47455420 (from byte 58)",
        ]
    );
    let errs = check_out(&spec("ipv6 / udp / vlan / vlan"), &f).expect_err("missing headers");
    assert_eq!(
        errs,
        [
            "ipv6: expected this header, the frame has none",
            "udp: expected this header, the frame has none",
            "vlan.inner: expected this header, the frame has none",
        ]
    );
    // Ethernet padding after the IP packet is not payload.
    let mut padded = f.clone();
    padded.extend([0; 4]);
    assert_eq!(
        check_out(&spec("vlan / ipv4 / tcp / payload(\"GET \")"), &padded),
        Ok(())
    );
    let errs = check_out(&spec("ipv4(nope=1) / truncate(3)"), &f).expect_err("bad literal");
    assert_eq!(
        errs,
        ["ipv4 has no argument `nope`", "pkt.len: expected 3, got 62"]
    );
}

#[test]
fn encapsulated_packets_are_built_and_checked_level_by_level() {
    let ipip = "ipv4(src=10.9.9.9, dst=10.0.0.2) / \
                ipv4(src=198.51.100.1, dst=192.0.2.80) / tcp(dport=80) / payload(\"GET \")";
    let f = frame(ipip);
    // The outer header announces IPv4 and covers the inner packet: 20 + 20 + 20 + 4.
    assert_eq!(f[14 + 9], 4);
    assert_eq!(u16::from_be_bytes([f[16], f[17]]), 64);
    assert_eq!(check_out(&spec(ipip), &f), Ok(()));
    assert_eq!(check_out(&spec("ipv4(proto=4)"), &f), Ok(()));
    // The policy's view (section 4) is the outer level only.
    let h = parse_frame(&f);
    assert_eq!(h.ipv4.as_ref().map(|i| i.proto), Some(4));
    assert!(h.tcp.is_none());
    let inner = parse_inner(&f, &h, false).expect("inner level");
    assert_eq!(
        inner.ipv4.as_ref().map(|i| i.src),
        Some(Ipv4Addr::new(198, 51, 100, 1))
    );
    assert_eq!(inner.tcp.as_ref().map(|t| t.dport), Some(80));
    let errs = check_out(
        &spec("ipv4(src=10.9.9.9) / ipv4(src=198.51.100.2) / tcp(dport=81)"),
        &f,
    )
    .expect_err("inner mismatches");
    assert_eq!(
        errs,
        [
            "inner ipv4.src: expected 198.51.100.2, got 198.51.100.1",
            "inner tcp.dport: expected 81, got 80",
        ]
    );
    // GUE (variant 1): the inner packet follows the UDP header.
    let gue = "ipv6(src=2001:db8::9) / udp(dport=6080) / gue() / \
               ipv6(src=2001:db8::1, dst=2001:db8::80) / udp(dport=53)";
    let f = frame(gue);
    assert_eq!(check_out(&spec(gue), &f), Ok(()));
    assert_eq!(u16::from_be_bytes([f[54 + 4], f[54 + 5]]), 8 + 40 + 8);
    let errs = check_out(&spec("ipv6 / udp / gue() / ipv6 / udp(dport=54)"), &f)
        .expect_err("inner udp mismatch");
    assert_eq!(errs, ["inner udp.dport: expected 54, got 53"]);
    // A level the frame does not have, and a gue() without UDP, say so.
    let plain = frame("ipv4 / tcp");
    assert_eq!(
        check_out(&spec("ipv4 / ipv4 / tcp"), &plain),
        Err(vec![
            "inner ipv4: expected an encapsulated packet, the frame has none here".to_string()
        ])
    );
    assert_eq!(
        check_out(&spec("ipv4 / gue() / ipv4"), &plain),
        Err(vec![
            "gue: expected a UDP-encapsulated packet, the frame has no udp header here".to_string(),
            "inner ipv4: expected an encapsulated packet, the frame has none here".to_string(),
        ])
    );
    // Inner checksums are checked too.
    let mut bad = frame(ipip);
    bad[34 + 10] ^= 0xff;
    let errs = check_out(&spec("ipv4 / ipv4 / tcp"), &bad).expect_err("inner checksum");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("inner ipv4 header checksum invalid"),
        "{errs:?}"
    );
}

#[test]
fn checksum_failures() {
    let f = frame("ipv4 / tcp(checksum=0x1234)");
    assert_eq!(
        checksums_valid(&f),
        Err(vec![
            "tcp checksum invalid (0x1234, should be 0xbd6e)".to_string()
        ])
    );
    assert_eq!(
        check_out(&spec("ipv4 / tcp"), &f),
        Err(vec![
            "tcp checksum invalid (0x1234, should be 0xbd6e)".to_string()
        ])
    );
    let f = frame("ipv4(checksum=0xbeef) / udp");
    assert_eq!(
        checksums_valid(&f),
        Err(vec![
            "ipv4 header checksum invalid (0xbeef, should be 0xf6cd)".to_string()
        ])
    );

    // A rewrite that forgot the checksum: change the destination port only.
    let mut f = frame("ipv4 / udp(dport=53) / payload(\"abc\")");
    f[36..38].copy_from_slice(&5353u16.to_be_bytes());
    let errs = checksums_valid(&f).expect_err("stale udp checksum");
    assert!(errs[0].starts_with("udp checksum invalid"), "{errs:?}");

    // Zero UDP checksums: "none" over IPv4, forbidden over IPv6.
    assert_eq!(checksums_valid(&frame("ipv4 / udp(checksum=0)")), Ok(()));
    let errs = checksums_valid(&frame("ipv6 / udp(checksum=0)")).expect_err("zero over ipv6");
    assert!(
        errs[0].ends_with("ipv6 forbids a zero udp checksum"),
        "{errs:?}"
    );

    // Fragments are not checked; lengths past the frame are reported.
    assert_eq!(
        checksums_valid(&frame("ipv4(mf=1) / tcp(checksum=1)")),
        Ok(())
    );
    let errs = checksums_valid(&frame("ipv4(len=100) / udp")).expect_err("length too long");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("cannot check the udp checksum")),
        "{errs:?}"
    );
    let errs = checksums_valid(&frame("ipv6 / tcp / payload(\"abcdef\") / truncate(76)"))
        .expect_err("cut frame");
    assert!(
        errs[0].contains("past the end of the 76-byte frame"),
        "{errs:?}"
    );
}
