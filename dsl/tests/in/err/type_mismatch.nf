policy p on xdp {
    set ports: port = { 22 }
    rule a: tcp.dport == 10.0.0.1 => drop
    rule b: ip.src == 80 => drop
    rule c: eth.src == 10.0.0.1 => drop
    rule d: ip.src in ports => drop
    rule e: tcp.dport == "http" => drop
    rule f: tcp.dport == 1..5 => drop
    rule g: payload[0..4] == "GET" => drop
    rule h: ip.src & 0xff == 1 => drop
    default pass
}
