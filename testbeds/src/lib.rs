//! nfcc-testbeds: netns/veth topologies with RAII cleanup, the live-frame traffic generator,
//! behaviour checks on real interfaces and Mpps measurement.
//!
//! Not built yet: issue 6 ("Testbeds and Mpps").
