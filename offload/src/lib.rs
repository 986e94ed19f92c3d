//! nfcc-offload: SmartNIC capability profiles (`host`, `nfp`), the per-rule offload checker,
//! the HW/host split and offload deployment.
//!
//! Not built yet: issue 7 ("SmartNIC offload").
