//! `nfcc capture POLICY`: the packets a deployed policy hands to userspace (`redirect xsk`),
//! received on AF_XDP sockets bound on every receive queue of its interface and put in the
//! deployment's socket map (found by its role in the manifest). While the capture runs, the
//! policy's `redirect xsk` packets come here instead of passing; when it ends the sockets
//! close and the kernel takes them out of the map, so those packets pass again.

use crate::error::DriverError;
use nfcc_bpf::manifest::MapRole;
use nfcc_runtime::deploy::Deployment;
use nfcc_runtime::xsk::XskSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// One packet handed to userspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// The receive queue it came in on.
    pub queue: u32,
    /// IP protocol, source, source port, destination, destination port (`-` when absent).
    pub tuple: [String; 5],
    /// The frame.
    pub bytes: Vec<u8>,
}

/// AF_XDP sockets on every receive queue of a deployment's interface, in its socket map.
pub struct Capturer {
    sockets: Vec<XskSocket>,
    /// The next socket to read first, so one busy queue cannot starve the others.
    next: usize,
    started: Instant,
    received: u64,
}

/// The receive queues of `iface` (`/sys/class/net/IFACE/queues/rx-N`); at least queue 0.
fn rx_queues(iface: &str) -> Vec<u32> {
    let mut q: Vec<u32> = std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("rx-"))
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    q.sort_unstable();
    if q.is_empty() {
        q.push(0);
    }
    q
}

impl Capturer {
    /// Binds the sockets for deployment `d` and puts them in its socket map.
    pub fn open(d: &Deployment) -> Result<Capturer, DriverError> {
        let m = &d.manifest;
        let policy = d.policy();
        let host = m.host.as_ref().ok_or_else(|| {
            DriverError::Input(format!(
                "policy `{policy}` runs wholly on the NIC, which cannot hand packets to AF_XDP sockets"
            ))
        })?;
        let Some(map) = host.maps.iter().find(|e| e.role == MapRole::XskSockets) else {
            return Err(DriverError::Input(format!(
                "policy `{policy}` hands nothing to userspace: it has no `=> redirect xsk` rule"
            )));
        };
        let maps = nfcc_runtime::deploy::stage_maps(host)?;
        let mut sockets = Vec::new();
        for q in rx_queues(&m.iface) {
            if q >= map.max_entries {
                break;
            }
            let s = XskSocket::bind(&m.iface, q)?;
            let fd = s.fd().as_raw_fd() as u32;
            maps.map_update(&map.name, &q.to_le_bytes(), &fd.to_le_bytes())?;
            sockets.push(s);
        }
        Ok(Capturer {
            sockets,
            next: 0,
            started: Instant::now(),
            received: 0,
        })
    }

    /// The queues captured.
    pub fn queues(&self) -> Vec<u32> {
        self.sockets.iter().map(XskSocket::queue).collect()
    }

    /// Hands every packet that comes within `timeout` (at most `max`) to `on`; how many
    /// came.
    pub fn receive(
        &mut self,
        timeout: Duration,
        max: u32,
        on: &mut dyn FnMut(Captured),
    ) -> Result<u32, DriverError> {
        let n = self.sockets.len().max(1);
        // Each socket in turn, the wait shared between them.
        let each = timeout / n as u32;
        let mut got = 0;
        for i in 0..self.sockets.len() {
            let k = (self.next + i) % self.sockets.len();
            let s = &mut self.sockets[k];
            let queue = s.queue();
            got += s.recv(each, max - got, &mut |f: &[u8]| {
                on(Captured {
                    queue,
                    tuple: crate::watch::tuple_of(f),
                    bytes: f.to_vec(),
                })
            })?;
            if got >= max {
                break;
            }
        }
        self.next = (self.next + 1) % n;
        self.received += u64::from(got);
        Ok(got)
    }

    /// Receives until `count` packets came or `seconds` passed (either, or neither: until
    /// the process is stopped), handing each packet to `on` and calling `tick` with the
    /// packets and time until now once a second; the totals at the end.
    pub fn run(
        &mut self,
        count: Option<u64>,
        seconds: Option<f64>,
        on: &mut dyn FnMut(Captured),
        tick: &mut dyn FnMut(u64, Duration),
    ) -> Result<(u64, Duration), DriverError> {
        let deadline = seconds.map(Duration::from_secs_f64);
        let mut reported = 0;
        loop {
            let (n, t) = self.progress();
            if count.is_some_and(|max| n >= max) || deadline.is_some_and(|d| t >= d) {
                return Ok((n, t));
            }
            let room = count.map_or(4096, |max| (max - n).min(4096) as u32);
            self.receive(Duration::from_millis(100), room, on)?;
            let (n, t) = self.progress();
            if t.as_secs() > reported {
                reported = t.as_secs();
                tick(n, t);
            }
        }
    }

    /// Packets received until now, and the time since the sockets were bound.
    pub fn progress(&self) -> (u64, Duration) {
        (self.received, self.started.elapsed())
    }
}

/// A pcap file written a record at a time, each flushed as it comes (time-stamped now): what
/// `nfcc watch --pcap` and `nfcc capture --pcap` write.
pub struct PcapOut(std::fs::File);

impl PcapOut {
    /// Creates `path` with a pcap header.
    pub fn create(path: &std::path::Path) -> Result<PcapOut, DriverError> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(path).map_err(|source| DriverError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        let _ = f.write_all(&nfcc_emulator::pcap::write(&[]));
        Ok(PcapOut(f))
    }

    /// Appends `data`, a frame of `orig_len` bytes on the wire.
    pub fn append(&mut self, data: Vec<u8>, orig_len: u32) {
        use std::io::Write as _;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let rec = nfcc_emulator::pcap::Record {
            ts_sec: now.as_secs() as u32,
            ts_usec: now.subsec_micros(),
            orig_len,
            data,
        };
        // The record alone: the file header is already written.
        let one = nfcc_emulator::pcap::write(&[rec]);
        let _ = self.0.write_all(&one[24..]).and_then(|()| self.0.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_come_from_sysfs_and_default_to_zero() {
        assert_eq!(rx_queues("lo"), [0]);
        assert_eq!(rx_queues("no-such-interface-here"), [0]);
    }
}
