//! rtnetlink answers and notifications (interfaces, bridge ports, the
//! addresses of a port's peer, neighbour tables) never panic the parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = trafficjam_core::links::parse_link(data);
    let _ = trafficjam_core::links::parse_address(data);
    let _ = trafficjam_core::links::parse_neighbour(data);
    let _ = trafficjam_core::links::parse_link_change(data);
});
