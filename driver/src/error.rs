//! The driver's errors, and the one place they become exit codes (section 9 of the language
//! reference: 1 the input was wrong, 2 the environment refused, 3 a test or check failed).

use std::path::PathBuf;

/// Exit codes.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The input was wrong (diagnostics printed).
    pub const INPUT: u8 = 1;
    /// The environment refused (privileges, interfaces, the kernel), or this build cannot do
    /// it yet.
    pub const ENV: u8 = 2;
    /// A test or check failed.
    pub const FAILED: u8 = 3;
}

/// Why a command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// An input file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The source does not check or compile: the rendered diagnostics.
    #[error("{rendered}")]
    Diagnostics {
        /// The diagnostics as rustc-style text.
        rendered: String,
    },
    /// The input is wrong in a way the message explains.
    #[error("{0}")]
    Input(String),
    /// Something this build of nfcc cannot do yet (said in words).
    #[error("{0}")]
    NotBuilt(String),
    /// The environment refused (privileges, missing interface, device).
    #[error("{0}")]
    Environment(String),
    /// The kernel or the pins refused.
    #[error(transparent)]
    Runtime(#[from] nfcc_runtime::RuntimeError),
    /// The rbpf engine cannot run the program: the instruction or helper, and why.
    #[error("{0} (the emulator's engines run it: --engine emulator or jit)")]
    Oracle(#[from] nfcc_oracle::OracleError),
    /// A check failed (the offload gate, an equivalence): nothing was deployed.
    #[error("{0}")]
    Failed(String),
}

impl DriverError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            DriverError::Read { .. } | DriverError::Diagnostics { .. } | DriverError::Input(_) => {
                exit::INPUT
            }
            DriverError::Write { .. }
            | DriverError::NotBuilt(_)
            | DriverError::Environment(_)
            | DriverError::Runtime(_)
            | DriverError::Oracle(_) => exit::ENV,
            DriverError::Failed(_) => exit::FAILED,
        }
    }

    /// Whether the message is rendered diagnostics (printed as they are, without `error: `).
    pub fn is_rendered(&self) -> bool {
        matches!(self, DriverError::Diagnostics { .. })
    }
}

/// Reads a file as text.
pub fn read_text(path: &std::path::Path) -> Result<String, DriverError> {
    std::fs::read_to_string(path).map_err(|source| DriverError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a file as bytes.
pub fn read_bytes(path: &std::path::Path) -> Result<Vec<u8>, DriverError> {
    std::fs::read(path).map_err(|source| DriverError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file.
pub fn write(path: &std::path::Path, bytes: impl AsRef<[u8]>) -> Result<(), DriverError> {
    std::fs::write(path, bytes).map_err(|source| DriverError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_its_exit_code() {
        let io = || std::io::Error::other("x");
        let cases = [
            (
                DriverError::Read {
                    path: "a".into(),
                    source: io(),
                },
                1,
            ),
            (
                DriverError::Diagnostics {
                    rendered: String::new(),
                },
                1,
            ),
            (DriverError::Input(String::new()), 1),
            (
                DriverError::Write {
                    path: "a".into(),
                    source: io(),
                },
                2,
            ),
            (DriverError::NotBuilt(String::new()), 2),
            (DriverError::Environment(String::new()), 2),
            (
                DriverError::Runtime(nfcc_runtime::RuntimeError::Deploy(String::new())),
                2,
            ),
            (DriverError::Failed(String::new()), 3),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
        }
    }
}
