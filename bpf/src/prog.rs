//! Program types and their return codes: what a program's `r0` means to the kernel.
//!
//! The language's hooks (`xdp`, `tc ingress`, `tc egress`) are a policy's attachment point;
//! the kernel knows two program types behind them. [`ProgType`] is that kernel type, the one
//! type the emulator (context layout), the runtime (load and test run) and the object writer
//! (ELF section) share; the compiler converts a hook into it.

/// A kernel program type as nfcc uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgType {
    /// `BPF_PROG_TYPE_XDP`: context `struct xdp_md`, ELF section `xdp`, verdict an `XDP_*`.
    Xdp,
    /// `BPF_PROG_TYPE_SCHED_CLS`: context `struct __sk_buff`, ELF section `classifier` (or
    /// `tc`), verdict a `TC_ACT_*`.
    Tc,
}

impl ProgType {
    /// The ELF section nfcc writes for it (names aya, libbpf and iproute2 all accept).
    pub const fn section(self) -> &'static str {
        match self {
            ProgType::Xdp => "xdp",
            ProgType::Tc => "classifier",
        }
    }

    /// The program type an ELF section name announces (libbpf's conventions), if any.
    pub fn from_section(section: &str) -> Option<ProgType> {
        let head = section.split('/').next().unwrap_or(section);
        match head {
            "xdp" | "xdp.frags" => Some(ProgType::Xdp),
            "classifier" | "tc" | "tcx" => Some(ProgType::Tc),
            _ => None,
        }
    }

    /// Decodes a return value into what happens to the packet.
    pub fn action(self, retval: u64) -> Action {
        let r = retval as u32;
        match self {
            ProgType::Xdp => match r {
                xdp::ABORTED => Action::Abort,
                xdp::DROP => Action::Drop,
                xdp::PASS => Action::Pass,
                xdp::TX => Action::Tx,
                xdp::REDIRECT => Action::Redirect,
                n => Action::Other(n),
            },
            ProgType::Tc => match r as i32 {
                tc::OK | tc::UNSPEC => Action::Pass,
                tc::SHOT => Action::Drop,
                tc::REDIRECT => Action::Redirect,
                n => Action::Other(n as u32),
            },
        }
    }
}

impl std::fmt::Display for ProgType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Xdp => "an xdp program",
            Self::Tc => "a tc classifier",
        })
    }
}

/// What a program's return value does to the packet, whatever the program type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `XDP_ABORTED`.
    Abort,
    /// `XDP_DROP`, `TC_ACT_SHOT`.
    Drop,
    /// `XDP_PASS`, `TC_ACT_OK`, `TC_ACT_UNSPEC`.
    Pass,
    /// `XDP_TX`: back out of the port it came in on.
    Tx,
    /// `XDP_REDIRECT`, `TC_ACT_REDIRECT`.
    Redirect,
    /// Any other value (the kernel treats most as a drop).
    Other(u32),
}

impl Action {
    /// The verdict's name as nfcc prints it (`return N` for other values).
    pub fn name(self) -> String {
        match self {
            Action::Abort => "abort".into(),
            Action::Drop => "drop".into(),
            Action::Pass => "pass".into(),
            Action::Tx => "tx".into(),
            Action::Redirect => "redirect".into(),
            Action::Other(n) => format!("return {n}"),
        }
    }

    /// Whether the packet leaves the program (to the stack, back out, or elsewhere).
    pub fn emits(self) -> bool {
        matches!(self, Action::Pass | Action::Tx | Action::Redirect)
    }
}

/// `enum xdp_action`.
pub mod xdp {
    /// `XDP_ABORTED`
    pub const ABORTED: u32 = 0;
    /// `XDP_DROP`
    pub const DROP: u32 = 1;
    /// `XDP_PASS`
    pub const PASS: u32 = 2;
    /// `XDP_TX`
    pub const TX: u32 = 3;
    /// `XDP_REDIRECT`
    pub const REDIRECT: u32 = 4;
}

/// `TC_ACT_*` (`include/uapi/linux/pkt_cls.h`).
pub mod tc {
    /// `TC_ACT_UNSPEC`: the default action (the packet continues; the NIC's pass).
    pub const UNSPEC: i32 = -1;
    /// `TC_ACT_OK`
    pub const OK: i32 = 0;
    /// `TC_ACT_SHOT`
    pub const SHOT: i32 = 2;
    /// `TC_ACT_REDIRECT`
    pub const REDIRECT: i32 = 7;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_codes_decode() {
        assert_eq!(ProgType::Xdp.action(1), Action::Drop);
        assert_eq!(ProgType::Xdp.action(3), Action::Tx);
        assert_eq!(ProgType::Xdp.action(9), Action::Other(9));
        assert_eq!(ProgType::Tc.action(u64::from(u32::MAX)), Action::Pass);
        assert_eq!(ProgType::Tc.action(7), Action::Redirect);
        assert_eq!(ProgType::Tc.action(2), Action::Drop);
        assert_eq!(ProgType::Tc.action(5).name(), "return 5");
        assert_eq!(ProgType::from_section("xdp/foo"), Some(ProgType::Xdp));
        assert_eq!(ProgType::from_section("tc"), Some(ProgType::Tc));
        assert_eq!(ProgType::from_section("kprobe/x"), None);
    }
}
