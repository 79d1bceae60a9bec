//! A proxy is whitelisted before its first packet: trafficjam reacts to
//! Docker plugging the container into the network (which happens before
//! its process runs), not to the container having started. A proxy whose
//! entrypoint connects to a backend at once, started 20 times, never sees
//! its first attempt fail; the positive control is the same container
//! without the whitelist label, whose attempts must all fail.

use std::time::{Duration, Instant};

use trafficjam_testbed::docker::{
    docker, images, run_trafficjam, unique, Container, Network, TableGuard, BUSYBOX_IMAGE,
};
use trafficjam_testbed::{require_root, Listener};

const RUNS: usize = 20;

/// `docker run --rm` a container on `network` that connects to `to`:8080
/// as its very first action; true when that first attempt succeeded.
fn first_attempt(network: &str, labels: &[String], to: &str) -> bool {
    let name = unique("tjfirst");
    let mut args = vec!["run", "--rm", "--name", &name, "--network", network];
    for l in labels {
        args.extend(["--label", l]);
    }
    // busybox nc: one connection, one second to complete it (a dropped SYN
    // or ARP request is retried only after a second).
    let script =
        format!("if nc -w 1 {to} 8080 </dev/null; then echo FIRST-OK; else echo FIRST-FAIL; fi");
    args.extend([BUSYBOX_IMAGE, "sh", "-c", &script]);
    match docker(&args) {
        Ok(out) => out.contains("FIRST-OK"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_proxy_is_whitelisted_before_its_first_packet() {
    require_root();
    images().expect("build the test images");
    let n = std::process::id() % 200;
    let net = Network::create(
        "tjfirst",
        &[&format!("172.29.{n}.0/24"), &format!("fd29:{n:x}::/64")],
    )
    .expect("create the network");
    // trafficjam stopped by `docker rm -f` leaves its rules (fail closed):
    // the test removes them, also on failure.
    let _tables = TableGuard::inet(&format!("trafficjam-{}", net.name));
    let backend = Container::run("tjfb", &["--network", &net.name], BUSYBOX_IMAGE, &[])
        .expect("start the backend");
    let _listener = Listener::start(&backend.netns().unwrap()).expect("listen in the backend");
    let (b4, _) = backend.addrs(&net.name).unwrap();
    let label = unique("first");
    let proxy_label = vec![format!("tj.first={label}")];

    // Positive control of the blocked case comes first, without trafficjam:
    // the container connects (the backend listens, the network works).
    assert!(
        first_attempt(&net.name, &[], &b4),
        "without trafficjam the first attempt must succeed"
    );

    let tj = run_trafficjam(
        &[
            format!("NETWORK={}", net.name),
            format!("WHITELIST_FILTER=label=tj.first={label}"),
        ],
        &[],
    )
    .expect("start trafficjam");
    let started = Instant::now();
    while !tj.logs().contains("table bridge trafficjam-") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "trafficjam never enforced: {}",
            tj.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Not whitelisted: every first attempt fails (it is a backend).
    let unlabelled: usize = (0..3)
        .filter(|_| first_attempt(&net.name, &[], &b4))
        .count();
    assert_eq!(unlabelled, 0, "a backend's first attempts got through");

    // Whitelisted by label: every first attempt succeeds.
    let mut failed = Vec::new();
    let timer = Instant::now();
    for run in 0..RUNS {
        if !first_attempt(&net.name, &proxy_label, &b4) {
            failed.push(run);
        }
    }
    println!(
        "{RUNS} immediate-connect proxies in {:.1} s: {} failed first attempts",
        timer.elapsed().as_secs_f64(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "first attempts failed in runs {failed:?}; trafficjam logs:\n{}",
        tj.logs()
    );
}
