//! The kernel's per-program run statistics (`run_time_ns`, `run_cnt` of `bpf_prog_info`),
//! which the kernel keeps only while they are switched on, since timing every run costs a
//! few nanoseconds per packet (two clock reads) to every BPF program on the machine.
//!
//! [`RunTimeStats::enable`] switches them on for as long as the guard lives: through
//! `BPF_ENABLE_STATS`, whose file descriptor switches them off again when it closes (also
//! when the process dies), or, where that command is missing, by writing
//! `kernel.bpf_stats_enabled` and restoring its old value on drop.

use crate::RuntimeError;
use std::os::fd::OwnedFd;

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Run statistics switched on until dropped.
#[derive(Debug)]
pub struct RunTimeStats {
    how: How,
}

#[derive(Debug)]
enum How {
    /// The `BPF_ENABLE_STATS` descriptor, held only to be closed on drop.
    Fd(#[allow(dead_code)] OwnedFd),
    /// The sysctl's value before, restored on drop.
    Sysctl(String),
}

impl RunTimeStats {
    /// Switches the statistics on.
    pub fn enable() -> Result<RunTimeStats, RuntimeError> {
        match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => Ok(RunTimeStats { how: How::Fd(fd) }),
            Err(first) => {
                let old =
                    std::fs::read_to_string(SYSCTL).map_err(|source| RuntimeError::Traffic {
                        what: format!(
                            "BPF_ENABLE_STATS failed ({first}) and {SYSCTL} cannot be read"
                        ),
                        source,
                    })?;
                std::fs::write(SYSCTL, "1").map_err(|source| RuntimeError::Traffic {
                    what: format!("BPF_ENABLE_STATS failed ({first}) and {SYSCTL} cannot be set"),
                    source,
                })?;
                Ok(RunTimeStats {
                    how: How::Sysctl(old.trim().to_string()),
                })
            }
        }
    }

    /// How they were switched on, for reports.
    pub fn method(&self) -> &'static str {
        match self.how {
            How::Fd(_) => "BPF_ENABLE_STATS (off again when the measurement ends)",
            How::Sysctl(_) => "kernel.bpf_stats_enabled=1 (restored when the measurement ends)",
        }
    }
}

impl Drop for RunTimeStats {
    fn drop(&mut self) {
        if let How::Sysctl(old) = &self.how {
            let _ = std::fs::write(SYSCTL, old);
        }
    }
}
