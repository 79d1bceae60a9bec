//! The harness itself: with no firewall every flow of the bed works (so a
//! "blocked" result in the kernel tests means the firewall blocked it, not a
//! typo'd address), building it sends nothing (caches start cold), and
//! nothing is left behind afterwards, also when a test panics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use trafficjam_testbed::{addr, assert_matrix, ip, matrix, topology::policy_flows, Testbed};

/// Those of `names` that `ip netns list` still shows.
fn still_listed(names: &[String]) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    names
        .iter()
        .filter(|n| listed.contains(n) || std::path::Path::new("/run/netns").join(n).exists())
        .cloned()
        .collect()
}

/// Interfaces the bed names, which must never exist in the namespace the
/// tests run in (the machine's own): everything lives inside the bed.
const BED_LINKS: [&str; 8] = [
    "br-m", "br-u", "vproxy", "vproxyu", "vb1", "vb2", "vother", "vout",
];

fn links_here() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| BED_LINKS.contains(&n.as_str()) || n == "vx")
        .collect()
}

#[test]
fn open_bed_reaches_everything_and_cleans_up() {
    let names;
    {
        let bed = Testbed::build().expect("build the test bed");
        names = bed.names();
        assert_eq!(still_listed(&names), names, "namespaces not created");
        assert_eq!(links_here(), Vec::<String>::new(), "bed links in our netns");

        // Bridged packets go through the IP hooks inside the host namespace.
        for key in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
            let out = bed
                .host
                .exec("cat", &[&format!("/proc/sys/net/bridge/{key}")])
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{key}");
        }
        // Building sent nothing: no neighbour is known anywhere yet.
        for (label, ns) in bed.all() {
            let out = ns.ip(&["neigh", "show"]).unwrap();
            let known = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(known.trim().is_empty(), "{label} already knows: {known}");
        }

        let listeners = bed.listen().expect("start listeners");
        let flows = policy_flows(false, false);
        let outcomes = matrix::run(&flows, |l| bed.ns(l), Duration::from_millis(1500));
        assert_matrix("no firewall: everything reachable", &outcomes);
        // The listeners saw the probes, from the right sources.
        let b2 = listeners.arrivals("backend2");
        for from in [addr::B1_4, addr::B1_6, addr::OUTSIDE4, addr::OUTSIDE6] {
            assert_eq!(b2.count_from(ip(from)), 2, "tcp+udp from {from}: {b2:?}");
        }
        assert!(!listeners.arrivals("host").is_empty());
        listeners.reset();
        assert!(listeners.arrivals("backend2").is_empty());
    }
    assert_eq!(
        still_listed(&names),
        Vec::<String>::new(),
        "namespaces leaked"
    );
    assert_eq!(links_here(), Vec::<String>::new(), "links leaked");
}

#[test]
fn a_panic_inside_the_bed_still_tears_it_down() {
    let mut names = Vec::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let bed = Testbed::build().expect("build the test bed");
        let _listeners = bed.listen().expect("start listeners");
        names = bed.names();
        panic!("deliberate panic inside the bed");
    }));
    assert!(result.is_err(), "the closure was meant to panic");
    assert_eq!(names.len(), 7);
    assert_eq!(
        still_listed(&names),
        Vec::<String>::new(),
        "namespaces leaked"
    );
}
