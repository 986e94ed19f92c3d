//! Fuzz target: parsing, checking and rendering diagnostics never panic, and every span lies
//! inside the source.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let (_, diags) = nfcc_dsl::check_source(src, &nfcc_dsl::CheckOptions::default());
    for d in &diags {
        for l in &d.labels {
            assert!(l.span.end as usize <= src.len());
        }
    }
    let _ = nfcc_dsl::diag::render("fuzz.nf", src, &diags);
});
