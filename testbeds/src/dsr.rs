//! A direct-server-return testbed for `balance ... encap`: one L2 segment (a bridge in its own
//! namespace) joining the load balancer's interface — a veth left in the caller's namespace,
//! where `nfcc load` attaches the policy — a client, and backends in namespaces of their own.
//!
//! The client reaches the VIPs through the balancer's address. The balancer's program
//! encapsulates towards a backend and sends the frame back out (`tx`; the bridge-side veth runs
//! an XDP pass program, which gives it the NAPI instance XDP_TX into a veth needs), with MACs
//! from the caller's FIB (the balancer's interface forwards, as `bpf_fib_lookup` requires),
//! whose neighbour entries for the backends are static. The client computes its own TCP
//! checksums (a veth would leave them to an offload that XDP on the balancer forgets). Each backend holds the
//! VIPs on `lo`, decapsulates IP-in-IP and GUE (variant 1) with an XDP program on its
//! interface (`benches/c/dsr_decap.c`, as Katran's backends can; the kernel here is built
//! without the ipip and fou modules that `tunl0` and `ip fou` need), and answers the client
//! itself: the replies never pass the balancer. Every backend runs a TCP
//! server on port 80 of every address that answers each line with its own address, so a client
//! learns which backend holds its connection.
//!
//! Everything is removed on drop (and by the testbeds' Ctrl-C handler and stale sweep).

use crate::topology::{ip, register_namespace, release_namespace, TestbedError};
use nfcc_runtime::deploy::{self, AttachMode};
use nfcc_runtime::ProgType;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The balancer's address on the segment.
pub const LB: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 1);
/// The client's address.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 10);
/// The VIP the testbed's policies encapsulate with IP-in-IP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 80);
/// The VIP they encapsulate with GUE.
pub const VIP_GUE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 81);
/// The backends' GUE (fou) port.
pub const GUE_PORT: u16 = 6080;

/// Backend `i`'s address.
pub fn backend(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 5, 11 + i as u8)
}

/// The MAC of the segment address ending in `last`.
fn mac(last: u8) -> String {
    format!("02:00:00:05:00:{last:02x}")
}

/// The testbed; removed on drop.
pub struct Dsr {
    /// The balancer's interface, in the caller's namespace.
    pub lb_if: String,
    /// The client's namespace.
    pub client_ns: String,
    /// Each backend's namespace and address.
    pub backends: Vec<(String, Ipv4Addr)>,
    switch_ns: String,
    stop: Arc<AtomicBool>,
    servers: Vec<JoinHandle<()>>,
    /// The XDP programs of the balancer's bridge port and the backends (detached on drop).
    decaps: Vec<deploy::Attached>,
}

/// Runs `cmd ARGS` inside namespace `ns`.
fn ns_exec(ns: &str, args: &[&str]) -> Result<(), TestbedError> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .map_err(|e| TestbedError::Unavailable(format!("cannot run {}: {e}", args[0])))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(TestbedError::Command {
            cmd: format!("ip netns exec {ns} {}", args.join(" ")),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl Dsr {
    /// Builds the segment with `n` backends (at most 20) and starts their servers.
    pub fn new(n: usize) -> Result<Dsr, TestbedError> {
        let decap = crate::bench::clang("dsr_decap").map_err(TestbedError::Unavailable)?;
        let pass = crate::bench::clang("xdp_pass").map_err(TestbedError::Unavailable)?;
        let (switch_ns, lb_if) = register_namespace();
        let mut dsr = Dsr {
            lb_if,
            client_ns: String::new(),
            backends: Vec::new(),
            switch_ns,
            stop: Arc::new(AtomicBool::new(false)),
            servers: Vec::new(),
            decaps: Vec::new(),
        };
        // On error `dsr` is dropped, which removes whatever was built.
        dsr.build(n.min(20), &decap, &pass)?;
        Ok(dsr)
    }

    fn build(&mut self, n: usize, decap: &[u8], pass: &[u8]) -> Result<(), TestbedError> {
        let s = self.switch_ns.clone();
        ip(&["netns", "add", &s])?;
        ip(&["-n", &s, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &s, "link", "set", "br0", "up"])?;
        // The balancer's end stays here, its bridge port gets GRO for XDP_TX.
        ip(&[
            "link",
            "add",
            &self.lb_if,
            "type",
            "veth",
            "peer",
            "name",
            "p0",
            "netns",
            &s,
        ])?;
        ip(&["link", "set", &self.lb_if, "address", &mac(1)])?;
        ip(&["addr", "add", &format!("{LB}/24"), "dev", &self.lb_if])?;
        let _ = Command::new("sysctl")
            .args([
                "-qw",
                &format!("net.ipv6.conf.{}.disable_ipv6=1", self.lb_if),
            ])
            .output();
        // `bpf_fib_lookup` answers only for an interface that forwards.
        let fwd = format!("net.ipv4.conf.{}.forwarding=1", self.lb_if);
        let ok = Command::new("sysctl").args(["-qw", &fwd]).status();
        if !ok.is_ok_and(|s| s.success()) {
            return Err(TestbedError::Unavailable(format!("cannot set {fwd}")));
        }
        ip(&["link", "set", &self.lb_if, "up"])?;
        ip(&["-n", &s, "link", "set", "p0", "master", "br0", "up"])?;
        // Frames the balancer sends back out (XDP_TX) need the peer's NAPI instance, which a
        // native XDP program turns on (GRO alone did not, on this kernel).
        let attached = nfcc_runtime::traffic::in_netns(&s, || {
            let loaded = nfcc_runtime::load(pass, "xdp_pass", ProgType::Xdp)?;
            deploy::attach(loaded, "p0", AttachMode::Native)
        })?;
        self.decaps.push(attached);
        // The client.
        let (client, _) = register_namespace();
        self.client_ns = client.clone();
        self.endpoint(&client, 1, CLIENT)?;
        // A veth hands on a TCP segment with its checksum unfinished (offloaded) and the skb
        // saying so; XDP on the balancer drops that note, so the client must finish its own.
        ns_exec(&client, &["ethtool", "-K", "eth0", "tx", "off"])?;
        for vip in [VIP, VIP_GUE] {
            ip(&[
                "-n",
                &client,
                "route",
                "add",
                &format!("{vip}/32"),
                "via",
                &LB.to_string(),
            ])?;
        }
        // The backends.
        for i in 0..n {
            let (ns, _) = register_namespace();
            let addr = backend(i);
            self.backends.push((ns.clone(), addr));
            self.endpoint(&ns, 2 + i, addr)?;
            for vip in [VIP, VIP_GUE] {
                ip(&["-n", &ns, "addr", "add", &format!("{vip}/32"), "dev", "lo"])?;
            }
            let attached = nfcc_runtime::traffic::in_netns(&ns, || {
                let loaded = nfcc_runtime::load(decap, "dsr_decap", ProgType::Xdp)?;
                deploy::attach(loaded, "eth0", AttachMode::Native)
            })?;
            self.decaps.push(attached);
            // The balancer's FIB resolves backends without ARP.
            ip(&[
                "neigh",
                "replace",
                &addr.to_string(),
                "lladdr",
                &mac(addr.octets()[3]),
                "dev",
                &self.lb_if,
                "nud",
                "permanent",
            ])?;
            self.serve(&ns, addr)?;
        }
        Ok(())
    }

    /// Namespace `ns` on the segment through bridge port `p{port}`, its end `eth0` at `addr`.
    fn endpoint(&self, ns: &str, port: usize, addr: Ipv4Addr) -> Result<(), TestbedError> {
        let s = &self.switch_ns;
        let p = format!("p{port}");
        ip(&["netns", "add", ns])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", s, "link", "add", &p, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ])?;
        ip(&["-n", s, "link", "set", &p, "master", "br0", "up"])?;
        ip(&[
            "-n",
            ns,
            "link",
            "set",
            "eth0",
            "address",
            &mac(addr.octets()[3]),
        ])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ns_exec(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        Ok(())
    }

    /// A server on port 80 in `ns` answering every line with `addr`.
    fn serve(&mut self, ns: &str, addr: Ipv4Addr) -> Result<(), TestbedError> {
        let listener = nfcc_runtime::traffic::in_netns(ns, || {
            let l = TcpListener::bind("0.0.0.0:80").map_err(|e| {
                nfcc_runtime::RuntimeError::Deploy(format!("cannot listen on port 80: {e}"))
            })?;
            l.set_nonblocking(true).map_err(|e| {
                nfcc_runtime::RuntimeError::Deploy(format!(
                    "cannot make the listener non-blocking: {e}"
                ))
            })?;
            Ok(l)
        })?;
        let stop = self.stop.clone();
        self.servers.push(std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let stop = stop.clone();
                        conns.push(std::thread::spawn(move || answer(stream, addr, &stop)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        }));
        Ok(())
    }

    /// `n` TCP connections from the client to `vip` port 80 (each within two seconds).
    pub fn connect(&self, vip: Ipv4Addr, n: usize) -> Result<Vec<TcpStream>, TestbedError> {
        Ok(nfcc_runtime::traffic::in_netns(&self.client_ns, || {
            (0..n)
                .map(|_| {
                    let to = SocketAddr::from((vip, 80));
                    let s =
                        TcpStream::connect_timeout(&to, Duration::from_secs(2)).map_err(|e| {
                            nfcc_runtime::RuntimeError::Deploy(format!("connect to {to}: {e}"))
                        })?;
                    let t = Some(Duration::from_secs(2));
                    let _ = s.set_read_timeout(t);
                    let _ = s.set_write_timeout(t);
                    Ok(s)
                })
                .collect()
        })?)
    }
}

/// One request on an open connection: the backend that answered, or why none did.
pub fn ask(stream: &mut TcpStream) -> Result<Ipv4Addr, String> {
    stream.write_all(b"which\n").map_err(|e| e.to_string())?;
    let mut line = String::new();
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    match reader.read_line(&mut line) {
        Ok(0) => Err("closed".into()),
        Ok(_) => line
            .trim()
            .parse()
            .map_err(|_| format!("answer `{}`", line.trim())),
        Err(e) => Err(e.to_string()),
    }
}

/// Answers every line on `stream` with `addr` until it closes or the testbed stops.
fn answer(stream: TcpStream, addr: Ipv4Addr, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if out.write_all(format!("{addr}\n").as_bytes()).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Dsr {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in self.servers.drain(..) {
            let _ = s.join();
        }
        self.decaps.clear();
        for (ns, _) in &self.backends {
            release_namespace(ns, "");
        }
        if !self.client_ns.is_empty() {
            release_namespace(&self.client_ns, "");
        }
        release_namespace(&self.switch_ns, &self.lb_if);
    }
}
