//! The parser of the kernel's answers (acks, errors with extended-ack
//! text, dump entries) never panics on any datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = trafficjam_netlink::fuzzing::parse_replies(data);
});
