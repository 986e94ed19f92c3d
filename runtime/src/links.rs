//! Interfaces as the kernel announces them: the list of interfaces now, and a subscription to
//! link events (created, deleted, renamed) on a NETLINK_ROUTE socket — what the agent follows
//! so that an interface that appears later (a pod's veth) is attached and one that goes away
//! is forgotten, without polling `ip link`.
//!
//! The socket is ours (`sys::link_events_socket`, next to the other sockets) because it is
//! only bound and read; the messages are decoded by netlink-packet-route.

use crate::RuntimeError;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::RouteNetlinkMessage;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// What happened to an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// Created, or changed (up, down, renamed): it exists now under `name`.
    Present {
        /// Its index.
        index: u32,
        /// Its name.
        name: String,
    },
    /// Deleted (or moved to another network namespace).
    Removed {
        /// Its index.
        index: u32,
        /// Its name, when the message carried one.
        name: String,
    },
}

/// Every interface of the calling thread's network namespace: (index, name), by index.
pub fn interfaces() -> Result<Vec<(u32, String)>, RuntimeError> {
    crate::sys::interfaces()
        .map_err(|e| RuntimeError::Deploy(format!("cannot list the interfaces: {e}")))
}

/// A subscription to link events in the namespace of the thread that made it.
pub struct LinkEvents {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl LinkEvents {
    /// Subscribes.
    pub fn subscribe() -> Result<LinkEvents, RuntimeError> {
        let fd = crate::sys::link_events_socket().map_err(|e| {
            RuntimeError::Deploy(format!("cannot subscribe to link events (netlink): {e}"))
        })?;
        Ok(LinkEvents {
            fd,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Waits up to `timeout` for events; returns those that came (empty when none did).
    /// When the kernel dropped events because the socket's buffer was full, a `Present`
    /// event with index 0 stands for "anything may have changed": the caller looks again.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<LinkEvent>, RuntimeError> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut out = Vec::new();
        let ready = match crate::sys::poll_any(&[self.fd.as_fd()], ms) {
            Ok(r) => r,
            // A signal (SIGTERM, SIGHUP) interrupted the wait: the caller looks at its flags.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => false,
            Err(e) => {
                return Err(RuntimeError::Deploy(format!(
                    "cannot wait for link events: {e}"
                )))
            }
        };
        if !ready {
            return Ok(out);
        }
        // Everything waiting, then return: a burst of events is one wake-up.
        loop {
            match crate::sys::recv_now(self.fd.as_fd(), &mut self.buf) {
                Ok(Some(n)) => decode(&self.buf[..n], &mut out),
                Ok(None) => return Ok(out),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    out.push(LinkEvent::Present {
                        index: 0,
                        name: String::new(),
                    });
                }
                Err(e) => {
                    return Err(RuntimeError::Deploy(format!(
                        "cannot read link events: {e}"
                    )))
                }
            }
        }
    }
}

/// Decodes one datagram (several netlink messages) into events; messages of other kinds and
/// ones that do not decode are skipped.
fn decode(mut buf: &[u8], out: &mut Vec<LinkEvent>) {
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return;
        }
        if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len]) {
            let link = |m: &netlink_packet_route::link::LinkMessage| {
                let name = m
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                (m.header.index, name)
            };
            match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                    let (index, name) = link(&m);
                    out.push(LinkEvent::Present { index, name });
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
                    let (index, name) = link(&m);
                    out.push(LinkEvent::Removed { index, name });
                }
                _ => {}
            }
        }
        // Messages are 4-byte aligned in a datagram.
        let step = (len + 3) & !3;
        buf = &buf[step.min(buf.len())..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_of_two_link_messages_decodes_to_two_events() {
        use netlink_packet_core::NetlinkHeader;
        let mut bytes = Vec::new();
        for (kind, index, name) in [(true, 7u32, "tb7r0"), (false, 8, "tb8r0")] {
            let mut m = netlink_packet_route::link::LinkMessage::default();
            m.header.index = index;
            m.attributes.push(LinkAttribute::IfName(name.into()));
            let inner = if kind {
                RouteNetlinkMessage::NewLink(m)
            } else {
                RouteNetlinkMessage::DelLink(m)
            };
            let mut msg = NetlinkMessage::new(NetlinkHeader::default(), inner.into());
            msg.finalize();
            let mut b = vec![0u8; msg.buffer_len()];
            msg.serialize(&mut b);
            bytes.extend_from_slice(&b);
        }
        let mut out = Vec::new();
        decode(&bytes, &mut out);
        assert_eq!(
            out,
            vec![
                LinkEvent::Present {
                    index: 7,
                    name: "tb7r0".into()
                },
                LinkEvent::Removed {
                    index: 8,
                    name: "tb8r0".into()
                }
            ]
        );
        // A truncated datagram decodes what is whole and stops.
        let mut out = Vec::new();
        decode(&bytes[..bytes.len() - 3], &mut out);
        assert_eq!(out.len(), 1);
    }
}
