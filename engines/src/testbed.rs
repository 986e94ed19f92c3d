//! The testbed as a test engine (`nfcc test --engine testbed`): each test packet goes through
//! the real path — sent by the process's traffic generator out of the transmitting veth, run by the
//! policy attached on the receiving veth (native XDP, or TC ingress with GRO giving the veth
//! its NAPI; a TC egress policy sits on the sending veth instead and its packets are sent
//! through the qdisc layer by a packet socket) — and the verdict is what happened to it, observed from outside the program:
//! captured entering the receiving side's stack (pass; for TC, by a protocol socket, which
//! the kernel serves after TC ingress), captured coming back to the transmitting side (tx; a pass-all XDP program there
//! lets bounced frames in), captured leaving a redirect target (each interface the policy
//! redirects to is a veth in the namespace), received on the AF_XDP socket bound on the
//! receiving veth's queue and put in the policy's socket map (`redirect xsk`), or none of
//! these. The deciding rule comes from
//! the per-rule counters, and a packet that vanished is a drop, or an abort when its rule
//! aborts (the two look alike from outside). Held to the evaluator by `nfcc_dsl::testing::compare` like every
//! other engine: a rule that should pass a packet the real path loses is a disagreement.

use nfcc_compiler::compile::{Compiled, CompiledProgram};
use nfcc_dsl::checked::{CounterId, Policy, RuleRef, Scalar, Terminal};
use nfcc_dsl::eval::Outcome;
use nfcc_dsl::testing::Engine;
use nfcc_runtime::capture::Capture;
use nfcc_runtime::deploy::{self, AttachMode, Attached};
use nfcc_runtime::traffic::Generator;
use nfcc_runtime::ProgType;
use nfcc_testbeds::{Testbed, TestbedError};
use std::time::Duration;

/// How long a packet that should arrive somewhere is waited for.
const ARRIVAL: Duration = Duration::from_millis(200);
/// How long a packet that should vanish is watched for.
const QUIET: Duration = Duration::from_millis(20);

/// A policy on a testbed, driven packet by packet.
pub struct TestbedEngine {
    tb: Testbed,
    object: Vec<u8>,
    program: CompiledProgram,
    attached: Option<Attached>,
    _tx_pass: Attached,
    generator: Generator,
    rx_cap: Capture,
    tx_cap: Capture,
    /// Redirect targets: (name, capture on its peer, the pass-all program on the peer).
    ports: Vec<(String, Capture, Attached)>,
    rx_ifindex: u32,
    /// A TC ingress policy: attached as a classifier, and what it passes is captured after
    /// TC ingress, one capture per ethertype (the tap in `rx_cap` sees frames before it).
    tc: bool,
    after_tc: std::collections::HashMap<u16, Capture>,
    /// A TC egress policy: attached on the sending side's egress and fed through the qdisc
    /// layer by this injector (the XDP generator's frames bypass TC egress).
    egress: Option<nfcc_runtime::capture::Injector>,
    tx_ifindex: u32,
    /// For a `redirect xsk` policy: the AF_XDP socket on the receiving veth's queue 0.
    xsk: Option<nfcc_runtime::xsk::XskSocket>,
}

/// Whether a frame carries an outer VLAN tag.
fn tagged(frame: &[u8]) -> bool {
    matches!(frame.get(12..14), Some([0x81, 0x00] | [0x88, 0xa8])) && frame.len() >= 18
}

/// The protocol the kernel delivers a frame as: its ethertype, or after an outer VLAN tag
/// (which the kernel takes out of the frame) the next one.
fn delivered_ethertype(frame: &[u8]) -> u16 {
    let at = if tagged(frame) { 16 } else { 12 };
    frame
        .get(at..at + 2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
}

fn pass_all() -> Result<Compiled, TestbedError> {
    let src = "policy nfcc_tb_pass on xdp {\n  default pass\n}\n";
    let (p, _) = nfcc_dsl::check_source(src, &nfcc_dsl::CheckOptions::default());
    let p =
        p.ok_or_else(|| TestbedError::Unavailable("the pass-all program does not check".into()))?;
    nfcc_compiler::compile::compile(&p, "pass.nf", src, None)
        .map_err(|_| TestbedError::Unavailable("the pass-all program does not compile".into()))
}

impl TestbedEngine {
    /// A testbed for policy `name` of `compiled` (compiled with the virtual clock, like the
    /// kernel engine's, so limiters see the evaluator's frozen time).
    pub fn new(compiled: &Compiled, name: &str) -> Result<TestbedEngine, TestbedError> {
        let program = compiled
            .programs
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| TestbedError::Unavailable(format!("no program `{name}`")))?;
        let (tc, egress) = match program.hook {
            nfcc_dsl::checked::Hook::Xdp => (false, false),
            nfcc_dsl::checked::Hook::TcIngress => (true, false),
            nfcc_dsl::checked::Hook::TcEgress => (false, true),
        };
        if egress && !program.ir.redirects.is_empty() {
            return Err(TestbedError::Unavailable(
                "a tc egress policy that redirects does not run on the testbed yet".into(),
            ));
        }
        let tb = Testbed::new()?;
        if tc {
            // No native XDP on the receiving veth: GRO gives it the NAPI redirected frames need.
            tb.enable_gro()?;
        }
        let pass = pass_all()?;
        let tx = tb.tx.clone();
        let tx_pass = tb.on_tx(|| {
            let l = nfcc_runtime::load(&pass.object, "nfcc_tb_pass", ProgType::Xdp)?;
            deploy::attach(l, &tx, AttachMode::Native)
        })?;
        let tx2 = tb.tx.clone();
        let (generator, tx_cap, injector, tx_ifindex) = tb.on_tx(|| {
            Ok((
                Generator::new(nfcc_runtime::ifindex(&tx2)?)?,
                Capture::open(&tx2)?,
                if egress {
                    Some(nfcc_runtime::capture::Injector::open(&tx2)?)
                } else {
                    None
                },
                nfcc_runtime::ifindex(&tx2)?,
            ))
        })?;
        let rx = tb.rx.clone();
        let (rx_cap, rx_ifindex) =
            tb.on_rx(|| Ok((Capture::open(&rx)?, nfcc_runtime::ifindex(&rx)?)))?;
        let xsk_map = nfcc_bpf::layout::xsk_map_name(&program.name);
        let xsk = if program.maps.iter().any(|(m, _)| m.name == xsk_map) {
            let rx = tb.rx.clone();
            Some(tb.on_rx(move || nfcc_runtime::xsk::XskSocket::bind(&rx, 0))?)
        } else {
            None
        };
        // Every interface the policy redirects to exists in the namespace, and what it sends
        // is captured on its peer (a pass-all program there takes redirected frames in).
        let mut ports = Vec::new();
        for name in &program.ir.redirects {
            let peer = tb.add_port(name)?;
            let pass = &pass;
            let (cap, prog) = tb.in_ns(move || {
                let l = nfcc_runtime::load(&pass.object, "nfcc_tb_pass", ProgType::Xdp)?;
                Ok((
                    Capture::open(&peer)?,
                    deploy::attach(l, &peer, AttachMode::Native)?,
                ))
            })?;
            ports.push((name.clone(), cap, prog));
        }
        Ok(TestbedEngine {
            tb,
            object: compiled.object.clone(),
            program,
            attached: None,
            _tx_pass: tx_pass,
            generator,
            rx_cap,
            tx_cap,
            ports,
            rx_ifindex,
            tc,
            after_tc: std::collections::HashMap::new(),
            egress: injector,
            tx_ifindex,
            xsk,
        })
    }

    fn loaded(&self) -> Result<&nfcc_runtime::Loaded, String> {
        self.attached
            .as_ref()
            .map(Attached::loaded)
            .ok_or_else(|| "the program is not attached".to_string())
    }

    fn stats(&self, rules: usize) -> Result<Vec<u64>, String> {
        self.loaded()?.rule_counts(rules).map_err(|e| e.to_string())
    }
}

impl Engine for TestbedEngine {
    fn name(&self) -> &str {
        "testbed"
    }

    fn meta(&self) -> nfcc_dsl::eval::Meta {
        nfcc_dsl::eval::Meta {
            // On egress the packet's interface is the one it leaves by.
            ifindex: if self.egress.is_some() {
                self.tx_ifindex
            } else {
                self.rx_ifindex
            },
            rxq: 0,
            mark: 0,
        }
    }

    /// Frames shorter than an Ethernet header cannot be sent.
    fn can_run(&self, frame: &[u8]) -> bool {
        frame.len() >= 14 && frame.len() <= nfcc_runtime::traffic::MAX_FRAME
    }

    fn reset(&mut self, policy: &Policy) -> Result<(), String> {
        // Detach the previous test's program first: a fresh load gives fresh maps.
        self.attached = None;
        let object = self.object.clone();
        let program = self.program.clone();
        let rx = self.tb.rx.clone();
        let now = nfcc_dsl::eval::State::new(policy).now_ns;
        let (kind, mode) = if self.egress.is_some() {
            (ProgType::Tc, AttachMode::TcEgress)
        } else if self.tc {
            (ProgType::Tc, AttachMode::TcIngress)
        } else {
            (ProgType::Xdp, AttachMode::Native)
        };
        let egress = self.egress.is_some();
        let tx = self.tb.tx.clone();
        let xsk_fd = self.xsk.as_ref().map(|s| {
            use std::os::fd::AsRawFd;
            s.fd().as_raw_fd() as u32
        });
        let load_and_attach = move || {
            let l = nfcc_runtime::load(&object, &program.name, kind)?;
            for (map, entries) in &program.maps {
                if map.name == nfcc_bpf::layout::clock_map_name(&program.name) {
                    l.map_update(&map.name, &0u32.to_le_bytes(), &now.to_le_bytes())?;
                }
                for (k, v) in entries {
                    l.map_update(&map.name, k, v)?;
                }
            }
            l.fill_redirects(&program.name, &program.ir.redirects)?;
            if let Some(fd) = xsk_fd {
                let map = nfcc_bpf::layout::xsk_map_name(&program.name);
                l.map_update(&map, &0u32.to_le_bytes(), &fd.to_le_bytes())?;
            }
            deploy::attach(l, if egress { &tx } else { &rx }, mode)
        };
        let attached = if egress {
            self.tb.on_tx(load_and_attach)
        } else {
            self.tb.on_rx(load_and_attach)
        }
        .map_err(|e| e.to_string())?;
        self.attached = Some(attached);
        Ok(())
    }

    fn run(&mut self, policy: &Policy, frame: &[u8]) -> Result<Outcome, String> {
        let ethertype = delivered_ethertype(frame);
        if self.tc && !self.after_tc.contains_key(&ethertype) {
            let rx = self.tb.rx.clone();
            let cap = self
                .tb
                .on_rx(move || Capture::open_after_tc(&rx, ethertype))
                .map_err(|e| e.to_string())?;
            self.after_tc.insert(ethertype, cap);
        }
        for c in self.after_tc.values() {
            c.drain().map_err(|e| e.to_string())?;
        }
        self.rx_cap.drain().map_err(|e| e.to_string())?;
        self.tx_cap.drain().map_err(|e| e.to_string())?;
        if let Some(s) = self.xsk.as_mut() {
            while s
                .recv(Duration::ZERO, 64, &mut |_| {})
                .map_err(|e| e.to_string())?
                > 0
            {}
        }
        let before = self.stats(self.program.ir.default.1 as usize)?;
        match &self.egress {
            Some(inj) => inj.send(frame),
            None => self.generator.send(frame, 1),
        }
        .map_err(|e| e.to_string())?;
        // The rule is known once its counter moved (the receiving NAPI runs right after the
        // send, on this CPU, but give it time).
        let mut after = self.stats(self.program.ir.default.1 as usize)?;
        for _ in 0..100 {
            if after != before {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
            after = self.stats(self.program.ir.default.1 as usize)?;
        }
        let rule = crate::rule_from_counts(&self.program, policy, &before, &after)?;
        let terminal = match rule {
            RuleRef::Rule(id) => policy.rule(id).terminal.clone(),
            RuleRef::Default => Some(policy.default.terminal.clone()),
        };
        let wait = match terminal {
            Some(Terminal::Drop | Terminal::Abort) => QUIET,
            _ => ARRIVAL,
        };
        // Wherever the packet comes out first: the receiving side's stack, back at the sender,
        // or out of a redirect target.
        let start = std::time::Instant::now();
        let seen = loop {
            let step = Duration::from_millis(1);
            let stack = match self.after_tc.get(&ethertype) {
                Some(c) if self.tc => c,
                _ => &self.rx_cap,
            };
            if let Some(mut f) = stack.next(step).map_err(|e| e.to_string())? {
                // The kernel clears a frame's outer VLAN tag before protocol sockets see it;
                // no .nf action can change that tag, so the sent one is put back.
                if self.tc && tagged(frame) && !tagged(&f) && f.len() >= 12 {
                    f.splice(12..12, frame[12..16].iter().copied());
                }
                break Some((Terminal::Pass, f));
            }
            if let Some(f) = self
                .tx_cap
                .next(Duration::ZERO)
                .map_err(|e| e.to_string())?
            {
                break Some((Terminal::Tx, f));
            }
            if let Some(s) = self.xsk.as_mut() {
                let mut got = None;
                s.recv(Duration::ZERO, 1, &mut |f| got = Some(f.to_vec()))
                    .map_err(|e| e.to_string())?;
                if let Some(f) = got {
                    break Some((Terminal::Xsk, f));
                }
            }
            let mut port = None;
            for (name, cap, _) in &self.ports {
                if let Some(f) = cap.next(Duration::ZERO).map_err(|e| e.to_string())? {
                    port = Some((Terminal::Redirect(name.clone()), f));
                    break;
                }
            }
            if port.is_some() || start.elapsed() >= wait {
                break port;
            }
        };
        let (verdict, packet) = match seen {
            Some(x) => x,
            // Vanished: dropped or aborted, which look alike from here.
            None => match terminal {
                Some(Terminal::Abort) => (Terminal::Abort, frame.to_vec()),
                _ => (Terminal::Drop, frame.to_vec()),
            },
        };
        Ok(Outcome {
            verdict,
            rule,
            packet,
            mark: None,
        })
    }

    fn counter(
        &mut self,
        policy: &Policy,
        id: CounterId,
        key: &[Scalar],
    ) -> Result<(u64, u64), String> {
        let loaded = self.loaded()?;
        crate::read_counter(policy, &self.program.name, id, key, |m, k| {
            loaded.map_lookup(m, k).map_err(|e| e.to_string())
        })
    }
}
