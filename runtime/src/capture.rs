//! Capturing frames on an interface with an `AF_PACKET` socket: what the testbeds use to see
//! whether a packet arrived, was bounced or vanished.
//!
//! Why the sockets are ours (`sys::packet_*`) and not pnet's datalink layer (`pnet_datalink`
//! 0.35): pnet would open them in the calling thread's namespace as these do, but its Linux
//! receiver reads with `recvfrom` and drops the sender's address and all ancillary data, so
//! - it cannot tell a frame that came in from one the host sent (`sll_pkttype ==
//!   PACKET_OUTGOING`): the testbed's capture on `tx2` would see its own injector's frames as
//!   arrivals;
//! - it loses a received frame's outer VLAN tag, which the kernel moves into metadata and only
//!   `PACKET_AUXDATA` hands back, so tagged frames would be held to their literals untagged;
//! - its layer-2 channel is always bound to `ETH_P_ALL` (a tap, before TC ingress) and its
//!   layer-3 one is a `SOCK_DGRAM` socket that strips the link header, so neither is
//!   [`Capture::open_after_tc`] (whole frames of one ethertype after TC ingress) nor an
//!   [`Injector`] that receives nothing;
//! - its read timeout is fixed when the channel opens, where [`Capture::next`] waits as long as
//!   each call asks.
//!
//! Both losses were seen once with pnet 0.35 on a veth pair in a namespace: a second channel on
//! the sending veth returned the two frames sent as if they had arrived, and the peer got a
//! 64-byte 802.1Q frame as 60 bytes without its tag. Handing pnet a socket of ours
//! (`Config::socket_fd`) would keep the socket code here and still lose both. Performance
//! played no part: the reasons are what pnet cannot express.

use crate::{sys, RuntimeError};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// A packet socket on one interface, receiving the frames that come in on it.
#[derive(Debug)]
pub struct Capture {
    fd: OwnedFd,
}

fn err(what: &str, source: std::io::Error) -> RuntimeError {
    RuntimeError::Traffic {
        what: what.to_string(),
        source,
    }
}

impl Capture {
    /// Opens a capture on interface `iface` of the calling thread's network namespace.
    pub fn open(iface: &str) -> Result<Capture, RuntimeError> {
        let ifindex = crate::ifindex(iface)?;
        let fd = sys::packet_socket(ifindex, None)
            .map_err(|e| err(&format!("cannot capture on {iface}"), e))?;
        Ok(Capture { fd })
    }

    /// A capture of the frames of one `ethertype` arriving on `iface`. Unlike [`Capture::open`]
    /// (a tap, which sees frames before TC ingress), the kernel delivers to it only what TC
    /// ingress let through: what a TC policy passed.
    pub fn open_after_tc(iface: &str, ethertype: u16) -> Result<Capture, RuntimeError> {
        let ifindex = crate::ifindex(iface)?;
        let fd = sys::packet_socket(ifindex, Some(ethertype))
            .map_err(|e| err(&format!("cannot capture on {iface}"), e))?;
        Ok(Capture { fd })
    }

    /// The next frame that comes in within `timeout`.
    pub fn next(&self, timeout: Duration) -> Result<Option<Vec<u8>>, RuntimeError> {
        sys::packet_recv_incoming(self.fd.as_fd(), timeout.as_millis().min(60_000) as i32)
            .map_err(|e| err("cannot read a captured frame", e))
    }

    /// Discards every frame waiting.
    pub fn drain(&self) -> Result<(), RuntimeError> {
        while self.next(Duration::ZERO)?.is_some() {}
        Ok(())
    }
}

/// A packet socket that sends frames out of one interface through the qdisc layer (so TC
/// egress programs run on them, unlike frames the XDP generator redirects), receiving nothing.
#[derive(Debug)]
pub struct Injector {
    fd: OwnedFd,
    ifindex: u32,
}

impl Injector {
    /// An injector on interface `iface` of the calling thread's network namespace.
    pub fn open(iface: &str) -> Result<Injector, RuntimeError> {
        let ifindex = crate::ifindex(iface)?;
        // Protocol 0: the socket receives nothing.
        let fd = sys::packet_socket(ifindex, Some(0))
            .map_err(|e| err(&format!("cannot send on {iface}"), e))?;
        Ok(Injector { fd, ifindex })
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) -> Result<(), RuntimeError> {
        sys::packet_send(self.fd.as_fd(), self.ifindex, frame)
            .map_err(|e| err("cannot send a frame", e))
    }
}

/// Raw IP sockets, one per protocol and family, that receive a copy of every packet the
/// stack delivers locally — what netfilter's INPUT chain accepted (used to hold an imported
/// firewall to netfilter).
#[derive(Debug)]
pub struct Delivered {
    socks: Vec<OwnedFd>,
}

impl Delivered {
    /// Opens sockets for `protos` of IPv4 (or IPv6 with `v6`) in the calling thread's
    /// namespace.
    pub fn open(v6: bool, protos: &[u8]) -> Result<Delivered, RuntimeError> {
        let socks = protos
            .iter()
            .map(|&p| {
                sys::raw_ip_socket(v6, p)
                    .map_err(|e| err(&format!("cannot open a raw socket for protocol {p}"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Delivered { socks })
    }

    /// Hands every packet that arrives to `on` (IPv4: from the IP header; IPv6: from the
    /// upper-layer header), until `quiet` passes with nothing new.
    pub fn drain(&self, quiet: Duration, on: &mut dyn FnMut(&[u8])) -> Result<(), RuntimeError> {
        let mut buf = vec![0u8; 65536];
        loop {
            let mut any = false;
            for s in &self.socks {
                while let Some(n) = sys::recv_now(s.as_fd(), &mut buf)
                    .map_err(|e| err("cannot read a raw socket", e))?
                {
                    on(&buf[..n]);
                    any = true;
                }
            }
            if any {
                continue;
            }
            let fds: Vec<_> = self.socks.iter().map(AsFd::as_fd).collect();
            let ready = sys::poll_any(&fds, quiet.as_millis().min(60_000) as i32)
                .map_err(|e| err("cannot wait on raw sockets", e))?;
            if !ready {
                return Ok(());
            }
        }
    }
}
