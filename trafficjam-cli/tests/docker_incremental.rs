//! The daemon follows a network one event at a time (issue 12): once it
//! has discovered the network at start, a container connected costs one
//! Docker API call and leaving costs none, nothing lists the network
//! again, and every change is planned against the last transaction
//! (the ruleset is read once), a backend's port as its set elements alone
//! (nothing compiled whole). Counted with the daemon's own metrics, and
//! checked against what the kernel enforces after each step (the
//! container's port bound or gone, a proxy whitelisted or not).
//!
//! The image as the README runs it, on a network of the test's own; all
//! of it removed on drop, also on failure.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use trafficjam_testbed::docker::{
    docker, images, run_trafficjam, unique, Container, Network, TableGuard, BUSYBOX_IMAGE,
};
use trafficjam_testbed::{require_root, wait_until};

/// How long any step may take.
const LIMIT: Duration = Duration::from_secs(20);

fn metrics(port: u16) -> Option<HashMap<String, f64>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

/// The bridge table's `macs` and `proxies` as `nft` lists them.
fn bound(table: &str) -> (String, String) {
    let set = |name: &str| {
        let out = Command::new("nft")
            .args(["list", "set", "bridge", table, name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    (set("macs"), set("proxies"))
}

fn mac_of(c: &Container, network: &str) -> String {
    let f = format!("{{{{(index .NetworkSettings.Networks \"{network}\").MacAddress}}}}");
    docker(&["inspect", "--format", &f, &c.name]).unwrap()
}

#[test]
fn containers_are_followed_one_event_at_a_time() {
    require_root();
    images().expect("build the test images");
    let n = std::process::id() % 200;
    let net = Network::create("tjinc", &[&format!("172.25.{n}.0/24")]).expect("network");
    let table = format!("trafficjam-{}", net.name);
    let _tables = TableGuard::inet(&table);
    let label = unique("inc");
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut backends = Vec::new();
    for _ in 0..5 {
        backends.push(
            Container::run("tjincb", &["--network", &net.name], BUSYBOX_IMAGE, &[])
                .expect("backend"),
        );
    }
    let addr = format!("127.0.0.1:{port}");
    let tj = run_trafficjam(
        &[
            format!("NETWORK={}", net.name),
            format!("WHITELIST_FILTER=label=tj.inc={label}"),
        ],
        &["run", "--metrics", &addr],
    )
    .expect("start trafficjam");
    wait_until("the first discovery", LIMIT, || {
        metrics(port)
            .is_some_and(|m| m.get("trafficjam_applies_total").copied().unwrap_or(0.0) >= 1.0)
            && backends
                .iter()
                .all(|b| bound(&table).0.contains(&mac_of(b, &net.name)))
    });
    let start = metrics(port).unwrap();
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(get(&start, "trafficjam_full_syncs_total"), 1.0, "{start:?}");

    // Three more containers, one a proxy: each bound (the proxy
    // whitelisted) by one API call.
    let mut added = Vec::new();
    for i in 0..3 {
        let mut args = vec!["--network".to_string(), net.name.clone()];
        if i == 1 {
            args.extend(["--label".into(), format!("tj.inc={label}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let c = Container::run("tjinca", &args, BUSYBOX_IMAGE, &[]).expect("container");
        let mac = mac_of(&c, &net.name);
        wait_until("the new container bound", LIMIT, || {
            bound(&table).0.contains(&mac)
        });
        added.push(c);
    }
    wait_until("the proxy whitelisted", LIMIT, || {
        bound(&table).1.contains("veth")
    });
    // Two leave: stopped (die) and removed.
    let gone: Vec<String> = added
        .drain(..2)
        .map(|c| {
            let mac = mac_of(&c, &net.name);
            docker(&["rm", "-f", &c.name]).unwrap();
            mac
        })
        .collect();
    wait_until("the departed unbound", LIMIT, || {
        let (macs, proxies) = bound(&table);
        gone.iter().all(|m| !macs.contains(m)) && !proxies.contains("veth")
    });
    let end = metrics(port).unwrap();
    let delta = |k: &str| get(&end, k) - get(&start, k);
    println!(
        "3 containers in, 2 out: {} Docker API calls, {} events, {} full discoveries, {} ruleset reads, {} port updates, {} interface reads",
        delta("trafficjam_docker_api_calls_total"),
        delta("trafficjam_docker_events_total"),
        delta("trafficjam_full_syncs_total"),
        get(&end, "trafficjam_kernel_reads_total"),
        delta("trafficjam_port_updates_total"),
        delta("trafficjam_interface_reads_total")
    );
    assert_eq!(
        delta("trafficjam_full_syncs_total"),
        0.0,
        "the network was listed again"
    );
    assert_eq!(
        delta("trafficjam_docker_api_calls_total"),
        3.0,
        "one call per container connected, none per container leaving"
    );
    assert!(delta("trafficjam_docker_events_total") >= 5.0);
    assert_eq!(
        get(&end, "trafficjam_kernel_reads_total"),
        1.0,
        "every change after the first planned against the last transaction"
    );
    // Every port bound and unbound (three in, two out), the proxy's
    // included (its whitelisted addresses with it), was sent as its set
    // elements alone.
    assert!(
        delta("trafficjam_port_updates_total") >= 5.0,
        "ports were compiled whole"
    );
    // Each veth notifies a dozen times coming and going; the port's state
    // is taken from its notifications, and only the container's end is
    // read (30 reads seen here for the five; reading every notified
    // interface, as before, took about 25 per container).
    assert!(
        delta("trafficjam_interface_reads_total") <= 50.0,
        "interfaces read again for every notification"
    );
    drop(tj);
}
