//! Test harness of trafficjam: network namespaces as a host with bridges
//! and veth "containers", listeners that record what arrived, probes run
//! from inside the namespaces, and a reachability matrix.
//!
//! Everything is created in namespaces the test owns and deleted on drop,
//! also when a test panics. The host's own interfaces and ruleset are never
//! touched.

pub mod attack;
pub mod capture;
pub mod cli;
pub mod cni;
pub mod docker;
pub mod frame;
pub mod listener;
pub mod matrix;
mod netns;
pub mod observe;
pub mod probe;
pub mod scenario;
pub mod swarm;
pub mod topology;

pub use listener::{Arrivals, Listener};
pub use matrix::{assert_matrix, Flow, Outcome};
pub use netns::{require_root, run, Netns};
pub use probe::Proto;
pub use topology::{addr, ip, Listeners, Testbed, POLICY_ARGS};

/// Wait until `f` is true, checking every millisecond; how long it took.
/// Panics naming `what` after `limit`.
pub fn wait_until(
    what: &str,
    limit: std::time::Duration,
    mut f: impl FnMut() -> bool,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    start.elapsed()
}
