//! Netfilter as the reference an import is held to (`nfcc import ... --verify`): the original
//! ruleset restored with the machine's own tools (`iptables-restore`, `ip6tables-restore`,
//! `ipset restore`, `nft -j -f`) into a testbed's namespace, and the topology that makes
//! arriving packets pass through the imported chain and nothing else:
//!
//! - [`Path::Input`]: every address is local (a local route for 0/0 and ::/0, `accept_local`),
//!   so each packet goes to INPUT; raw IP sockets see what netfilter accepted. Netfilter's
//!   INPUT sees reassembled datagrams, so no fragment is ever sent this way.
//! - [`Path::Forward`]: the namespace routes everything on to a second namespace behind a
//!   veth pair (a default route through a gateway address that is only a permanent
//!   neighbour, so no destination is on a connected network), with the receiving end's
//!   addresses removed; a packet socket on the far end sees what FORWARD let through,
//!   fragments included.
//! - [`Path::Jump`]: a chain no hook calls, reached as its callers reach it: INPUT (or, for
//!   nftables, a base chain on input added to the chain's table, every other base chain made
//!   a regular one) jumps to it and accepts what comes back, as the import's `default pass`.
//!
//! Only this module runs the netfilter tools; the driver hands it the text and reads back
//! which tagged packets arrived.

use crate::topology::{ip, register_namespace, release_namespace, Testbed, TestbedError};
use nfcc_runtime::capture::{Capture, Delivered};
use std::time::Duration;

/// The original ruleset, as the kernel's own tools load it.
#[derive(Clone, Copy, Debug)]
pub enum Ruleset<'a> {
    /// An `iptables-save` dump (`ip6tables-save` with `v6`), with the `ipset save` sets it
    /// names.
    Iptables {
        /// The dump.
        dump: &'a str,
        /// An ip6tables dump.
        v6: bool,
        /// `ipset save` output, restored first.
        sets: Option<&'a str>,
    },
    /// `nft -j list ruleset` output.
    Nft {
        /// The JSON.
        json: &'a str,
    },
}

/// Where the imported chain sits, so how packets must travel to meet it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path<'a> {
    /// Packets addressed to this host (INPUT, an nft chain on `input` or `prerouting`).
    Input,
    /// Packets routed through this host (FORWARD, an nft chain on `forward`).
    Forward,
    /// A chain no hook calls: `chain` is its name (for nftables, `FAMILY/TABLE/CHAIN`).
    Jump {
        /// The chain.
        chain: &'a str,
    },
}

/// Netfilter restored in a testbed, with what sees the packets it let through.
pub struct Reference {
    receivers: Receivers,
    /// The MAC address frames must be sent to (the testbed's receiving end).
    pub rx_mac: String,
    /// The second namespace of [`Path::Forward`], removed on drop.
    sink: Option<(String, String)>,
}

enum Receivers {
    /// Raw IP sockets in the testbed's namespace, one per family.
    Local(Vec<Delivered>),
    /// A packet socket on the far end of the routed pair.
    Routed(Capture),
}

impl Drop for Reference {
    fn drop(&mut self) {
        if let Some((ns, host_if)) = &self.sink {
            release_namespace(ns, host_if);
        }
    }
}

fn sh(ns: &str, script: &str) -> Result<(), TestbedError> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", script])
        .output()
        .map_err(|e| TestbedError::Command {
            cmd: format!("ip netns exec {ns} sh -c '{script}'"),
            output: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(TestbedError::Command {
            cmd: script.to_string(),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Interface `dev`'s MAC address in namespace `ns`.
pub fn mac_of(ns: &str, dev: &str) -> Result<String, TestbedError> {
    let path = format!("/sys/class/net/{dev}/address");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat", &path])
        .output()
        .map_err(|e| TestbedError::Setup(format!("cannot read {dev}'s address: {e}")))?;
    let mac = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if mac.len() == 17 {
        Ok(mac)
    } else {
        Err(TestbedError::Setup(format!(
            "no MAC address for {dev} in {ns}"
        )))
    }
}

/// `json` with every base chain made a regular one and, in `chain`'s table, a base chain on
/// input (policy accept) that jumps to it.
fn nft_jump_from_input(json: &str, chain: &str) -> Result<String, TestbedError> {
    let bad = |why: String| TestbedError::Setup(format!("cannot reach nft chain {chain}: {why}"));
    let mut doc: serde_json::Value =
        serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
    let mut parts = chain.splitn(3, '/');
    let (Some(family), Some(table), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not FAMILY/TABLE/CHAIN".into()));
    };
    let items = doc
        .get_mut("nftables")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| bad("no `nftables` array".into()))?;
    for item in items.iter_mut() {
        if let Some(c) = item.get_mut("chain").and_then(|c| c.as_object_mut()) {
            for k in ["type", "hook", "prio", "policy", "dev"] {
                c.remove(k);
            }
        }
    }
    items.push(serde_json::json!({"chain": {
        "family": family, "table": table, "name": "nfcc_verify_input",
        "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}));
    items.push(serde_json::json!({"rule": {
        "family": family, "table": table, "chain": "nfcc_verify_input",
        "expr": [{"jump": {"target": name}}]}}));
    Ok(doc.to_string())
}

impl Reference {
    /// Restores `ruleset` in `tb`'s namespace and builds `path`'s topology. `rename_rx` renames
    /// the receiving end first (what `-i`/`iifname` rules were judged against); `protos` are
    /// the IP protocols the raw sockets of [`Path::Input`] and [`Path::Jump`] listen to.
    pub fn build(
        tb: &Testbed,
        ruleset: &Ruleset<'_>,
        path: Path<'_>,
        rename_rx: Option<&str>,
        protos: &[u8],
    ) -> Result<Reference, TestbedError> {
        let ns = tb.ns.as_str();
        let rx = match rename_rx {
            Some(name) => {
                sh(
                    ns,
                    &format!(
                        "ip link set {0} down && ip link set {0} name {name} && ip link set {name} up",
                        tb.rx
                    ),
                )?;
                name.to_string()
            }
            None => tb.rx.clone(),
        };
        let families: &[bool] = match ruleset {
            Ruleset::Iptables { v6, .. } => {
                if *v6 {
                    &[true]
                } else {
                    &[false]
                }
            }
            Ruleset::Nft { .. } => &[false, true],
        };
        sh(
            ns,
            &format!(
                "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
                 net.ipv4.conf.{rx}.rp_filter=0 net.ipv6.conf.{rx}.disable_ipv6=0 \
                 net.ipv6.conf.lo.disable_ipv6=0 && ip link set lo up"
            ),
        )?;
        let sink = if path == Path::Forward {
            Some(Self::routed(ns, &rx)?)
        } else {
            let route = families
                .iter()
                .map(|v6| {
                    if *v6 {
                        "ip -6 route add local ::/0 dev lo table local"
                    } else {
                        "ip route add local 0.0.0.0/0 dev lo table local"
                    }
                })
                .collect::<Vec<_>>()
                .join(" && ");
            sh(
                ns,
                &format!(
                    "sysctl -qw net.ipv4.conf.all.accept_local=1 net.ipv4.conf.{rx}.accept_local=1 \
                     && {route}"
                ),
            )?;
            None
        };
        // From here on a failure drops `reference`, which removes the sink.
        let mut reference = Reference {
            receivers: Receivers::Local(Vec::new()),
            rx_mac: String::new(),
            sink,
        };
        reference.rx_mac = mac_of(ns, &rx)?;
        reference.restore(ns, ruleset, path)?;
        let receivers = match &reference.sink {
            Some((sink_ns, _)) => {
                let dev = format!("{}s", sink_ns_dev(sink_ns));
                Receivers::Routed(nfcc_runtime::traffic::in_netns(sink_ns, move || {
                    Capture::open(&dev)
                })?)
            }
            None => {
                let mut v = Vec::new();
                for &v6 in families {
                    let mut p = vec![6u8, 17, if v6 { 58 } else { 1 }];
                    p.extend(protos.iter().copied().filter(|&x| x != 0));
                    p.sort_unstable();
                    p.dedup();
                    v.push(tb.in_ns(move || Delivered::open(v6, &p))?);
                }
                Receivers::Local(v)
            }
        };
        reference.receivers = receivers;
        Ok(reference)
    }

    /// The routed pair of [`Path::Forward`]: the sink namespace and its registered name.
    fn routed(ns: &str, rx: &str) -> Result<(String, String), TestbedError> {
        let (sink_ns, host_if) = register_namespace();
        let base = sink_ns_dev(&sink_ns);
        let (out, far) = (format!("{base}f"), format!("{base}s"));
        let built = (|| {
            ip(&["netns", "add", &sink_ns])?;
            ip(&[
                "-n", ns, "link", "add", &out, "type", "veth", "peer", "name", &far, "netns",
                &sink_ns,
            ])?;
            ip(&["-n", ns, "link", "set", &out, "up"])?;
            ip(&["-n", &sink_ns, "link", "set", &far, "up"])?;
            let far_mac = mac_of(&sink_ns, &far)?;
            // The far end only listens: no IPv6 of its own (no solicitations in the capture).
            sh(
                &sink_ns,
                &format!("sysctl -qw net.ipv6.conf.{far}.disable_ipv6=1"),
            )?;
            sh(
                ns,
                &format!(
                    "ip addr flush dev {rx} && sysctl -qw net.ipv6.conf.{out}.disable_ipv6=0 \
                     net.ipv4.conf.{out}.rp_filter=0 && \
                     sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 && \
                     ip route add default via 192.0.2.1 dev {out} onlink && \
                     ip neigh replace 192.0.2.1 lladdr {far_mac} dev {out} nud permanent && \
                     ip -6 route add default via fe80::1 dev {out} && \
                     ip -6 neigh replace fe80::1 lladdr {far_mac} dev {out} nud permanent"
                ),
            )
        })();
        match built {
            Ok(()) => Ok((sink_ns, host_if)),
            Err(e) => {
                release_namespace(&sink_ns, &host_if);
                Err(e)
            }
        }
    }

    fn restore(&self, ns: &str, ruleset: &Ruleset<'_>, path: Path<'_>) -> Result<(), TestbedError> {
        let file = |ext: &str, text: &str| -> Result<std::path::PathBuf, TestbedError> {
            let f =
                std::env::temp_dir().join(format!("nfcc-verify-{}-{ns}.{ext}", std::process::id()));
            std::fs::write(&f, text)
                .map_err(|e| TestbedError::Setup(format!("cannot write {}: {e}", f.display())))?;
            Ok(f)
        };
        let run = |ext: &str, text: &str, cmd: &str| -> Result<(), TestbedError> {
            let f = file(ext, text)?;
            let done = sh(ns, &format!("{cmd} {}", f.display()));
            let _ = std::fs::remove_file(&f);
            done
        };
        match *ruleset {
            Ruleset::Iptables { dump, v6, sets } => {
                if let Some(s) = sets {
                    run("ipset", s, "ipset restore <")?;
                }
                let tool = if v6 { "ip6tables" } else { "iptables" };
                run("rules", dump, &format!("{tool}-restore <"))?;
                if let Path::Jump { chain } = path {
                    sh(
                        ns,
                        &format!(
                            "{tool} -F INPUT && {tool} -P INPUT ACCEPT && {tool} -A INPUT -j {chain}"
                        ),
                    )?;
                }
            }
            Ruleset::Nft { json } => match path {
                Path::Jump { chain } => {
                    run("json", &nft_jump_from_input(json, chain)?, "nft -j -f")?
                }
                _ => run("json", json, "nft -j -f")?,
            },
        }
        Ok(())
    }

    /// Calls `on` with every packet netfilter let through since the last call, until nothing
    /// has arrived for `quiet`.
    pub fn drain(&self, quiet: Duration, on: &mut dyn FnMut(&[u8])) -> Result<(), TestbedError> {
        match &self.receivers {
            Receivers::Local(v) => {
                for d in v {
                    d.drain(quiet, on)?;
                }
            }
            Receivers::Routed(c) => {
                while let Some(frame) = c.next(quiet)? {
                    on(&frame);
                }
            }
        }
        Ok(())
    }
}

/// The interface-name stem for the sink namespace `nfcc-tb-<pid>-<n>`: `tb<pid>v<n>` (then
/// `f` for the near end, `s` for the far one; within 15 characters for pids up to 7 digits).
fn sink_ns_dev(sink_ns: &str) -> String {
    let rest = sink_ns.trim_start_matches("nfcc-tb-");
    let (pid, n) = rest.split_once('-').unwrap_or((rest, "0"));
    format!("tb{pid}v{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_nft_chain_is_reached_from_a_new_input_chain_and_nothing_else_hooks() {
        let json = r#"{"nftables":[{"metainfo":{"json_schema_version":1}},
            {"table":{"family":"inet","name":"f","handle":1}},
            {"chain":{"family":"inet","table":"f","name":"input","handle":1,"type":"filter","hook":"input","prio":0,"policy":"drop"}},
            {"chain":{"family":"inet","table":"f","name":"svc","handle":2}}]}"#;
        let out: serde_json::Value =
            serde_json::from_str(&nft_jump_from_input(json, "inet/f/svc").unwrap_or_default())
                .unwrap_or_default();
        let items = out["nftables"].as_array().cloned().unwrap_or_default();
        let hooked: Vec<&str> = items
            .iter()
            .filter_map(|i| i.get("chain"))
            .filter(|c| c.get("hook").is_some())
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(hooked, ["nfcc_verify_input"]);
        assert!(items
            .iter()
            .any(|i| i["rule"]["expr"][0]["jump"]["target"] == "svc"));
        assert_eq!(sink_ns_dev("nfcc-tb-1234567-12"), "tb1234567v12");
    }
}
