//! Positive controls of the attack scenarios: on the bed with NO firewall,
//! every attack of [`trafficjam_testbed::scenario`] (a compromised
//! container with CAP_NET_RAW on a plain Linux bridge) does what it
//! claims, seen on the receiving side. A firewall test that later finds the
//! same scenario stopped therefore proves the firewall stopped it, not a
//! malformed frame or a kernel default.
//!
//! The attacker is backend1 (`eth0`), or a container attached to the
//! bridge late; victims are backend2, the proxy and the host. Each scenario gets its own bed (deleted on drop) and
//! waits only until its effect shows (at most [`WAIT`]); the scenarios run
//! a few at a time. Run as root; nothing is skipped.

use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use trafficjam_testbed::attack;
use trafficjam_testbed::capture::Capture;
use trafficjam_testbed::frame::mac_of;
use trafficjam_testbed::listener::TCP_PORT;
use trafficjam_testbed::observe;
use trafficjam_testbed::scenario::{self, Stage};
use trafficjam_testbed::{addr, Listener, Testbed};

/// How long any single effect may take to show.
const WAIT: Duration = Duration::from_secs(2);

/// Scenarios run at once (each on its own bed).
const WORKERS: usize = 6;

fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Every scenario succeeds on a plain bridge.
#[test]
fn every_attack_scenario_works_without_a_firewall() {
    trafficjam_testbed::require_root();
    let scenarios = scenario::selected();
    let start = Instant::now();
    let results = scenario::parallel(&scenarios, WORKERS, |sc| {
        let stage = Stage::build(WAIT).expect("build the test bed");
        catch_unwind(AssertUnwindSafe(|| sc.run(&stage))).map_err(panic_text)
    });
    let mut bad = Vec::new();
    for (sc, r) in scenarios.iter().zip(&results) {
        match r {
            Ok(o) if o.succeeded && o.caveat.is_none() => println!(
                "ok   {:<100} {:>5} ms  {}",
                sc.name,
                o.after.unwrap_or_default().as_millis(),
                o.evidence
            ),
            Ok(o) => bad.push(format!(
                "{}: {} ({})",
                sc.name,
                o.caveat.as_deref().unwrap_or("no effect"),
                o.evidence
            )),
            Err(e) => bad.push(format!("{}: panicked: {e}", sc.name)),
        }
    }
    println!(
        "{} scenarios in {:.1} s",
        scenarios.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(
        bad.is_empty(),
        "{} of {} attacks did not work without a firewall:\n{}",
        bad.len(),
        scenarios.len(),
        bad.join("\n")
    );
}

/// Not an attack that works: the IPv6 tiny fragment (only 8 bytes of TCP
/// in the first fragment) is dropped by the receiving kernel itself, which
/// answers ICMPv6 parameter problem code 3 (RFC 8200 4.5) instead of a
/// SYN-ACK. Kept as a test so that a kernel that starts accepting it is
/// noticed: then the firewall needs a rule for it.
#[test]
fn ipv6_tiny_fragment_syn_is_refused_by_the_kernel_itself() {
    trafficjam_testbed::require_root();
    let bed = Testbed::build().expect("build the test bed");
    let (b1, b2) = (
        mac_of(&bed.backend1, "eth0").unwrap(),
        mac_of(&bed.backend2, "eth0").unwrap(),
    );
    let _listener = Listener::start(&bed.backend2).unwrap();
    let cap = Capture::start(&bed.backend1, "eth0").unwrap();
    let (b1_6, b2_6) = (addr::B1_6.parse().unwrap(), addr::B2_6.parse().unwrap());
    let port = attack::fresh_port();
    attack::send(
        &bed.backend1,
        "eth0",
        &attack::ipv6_fragments_tcp_syn(b1, b2, b1_6, b2_6, port, TCP_PORT, 8),
    )
    .unwrap();
    let param_problem = |f: &trafficjam_testbed::capture::Captured| {
        f.incoming()
            && f.ip().is_some_and(|p| {
                p.protocol == attack::proto::ICMPV6
                    && p.src == IpAddr::V6(b2_6)
                    && p.payload.first() == Some(&4)
                    && p.payload.get(1) == Some(&3)
            })
    };
    assert!(
        cap.wait_for(WAIT, param_problem),
        "no parameter problem for the IPv6 tiny fragment"
    );
    assert!(
        !observe::syn_ack_seen(&cap, b2_6.into(), port),
        "the kernel now answers an IPv6 tiny-fragment SYN: the firewall must handle it"
    );
}
