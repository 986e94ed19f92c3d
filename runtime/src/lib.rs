//! nfcc-runtime: the only crate that makes bpf() and netlink syscalls — load, attach, pin,
//! map updates, stats and `BPF_PROG_TEST_RUN`.
//!
//! Not built yet: issue 5 ("Runtime: load, attach, update and observe policies").
