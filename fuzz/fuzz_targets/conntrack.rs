//! Conntrack dump entries from the kernel never panic the parser, and a
//! parsed entry always yields a well-formed delete request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trafficjam_core::conntrack::{delete_request, parse_connection};

fuzz_target!(|data: &[u8]| {
    if let Some(c) = parse_connection(data) {
        let req = delete_request(&c);
        assert!(req.len() >= 20);
    }
});
