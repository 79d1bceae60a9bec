//! The harness itself: with no firewall every flow of the bed works (so a
//! "blocked" result in the kernel tests means the firewall blocked it, not a
//! typo'd address), and nothing is left behind afterwards.

use std::time::Duration;

use trafficjam_testbed::{assert_matrix, matrix, topology::policy_flows, Testbed};

fn our_namespaces() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let pid = format!("-{}-", std::process::id());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&pid))
        .map(str::to_string)
        .collect()
}

#[test]
fn open_bed_reaches_everything_and_cleans_up() {
    {
        let bed = Testbed::build().expect("build the test bed");
        let listeners = bed.listen().expect("start listeners");
        let flows = policy_flows(false, false);
        let outcomes = matrix::run(&flows, |l| bed.ns(l), Duration::from_millis(1500));
        assert_matrix("no firewall: everything reachable", &outcomes);
        assert!(!listeners.arrivals("backend2").tcp.is_empty());
        assert!(!our_namespaces().is_empty());
    }
    assert_eq!(our_namespaces(), Vec::<String>::new(), "namespaces leaked");
}
