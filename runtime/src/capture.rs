//! Capturing frames on an interface with an `AF_PACKET` socket: what the testbeds use to see
//! whether a packet arrived, was bounced or vanished.

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
        let fd = sys::packet_socket(ifindex)
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
