//! Packets from the NFLOG group (the blocked-connection log) never panic
//! the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(b) = trafficjam_core::nflog::parse_blocked(data) {
        let _ = b.transport.to_string();
    }
});
