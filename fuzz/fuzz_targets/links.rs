//! rtnetlink link answers (interfaces, bridge ports) never panic the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = trafficjam_core::links::parse_link(data);
});
