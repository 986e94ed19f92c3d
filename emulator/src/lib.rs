//! nfcc-emulator: runs XDP and TC ELF objects in userspace on rbpf, with emulated maps and
//! helpers, pcap input and output, and the offload-profile semantics switch.
//!
//! Not built yet: issue 4 ("Emulator and differential verification").
