//! Table listings and generation replies from the kernel never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trafficjam_core::wire::request;

fuzz_target!(|data: &[u8]| {
    let _ = request::parse_table_summary(data);
    let _ = request::parse_generation(data);
    let _ = request::notification_table(data);
});
