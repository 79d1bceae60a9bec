//! The daemon's opt-in metrics endpoint: transactions, restores after
//! tampering, and the kernel's drop counters, scraped over HTTP inside the
//! test bed's host namespace (the daemon runs there, so its loopback
//! listener and its rules are the bed's).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use trafficjam_testbed::cli::Daemon;
use trafficjam_testbed::probe::tcp_connect;
use trafficjam_testbed::{addr, ip, Testbed, POLICY_ARGS};

const BIN: &str = env!("CARGO_BIN_EXE_trafficjam");

fn scrape(bed: &Testbed, path: &'static str) -> String {
    bed.host
        .run(move || {
            let mut s = TcpStream::connect("127.0.0.1:9771")?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            // Sent in two pieces, as a client may: the server waits for the
            // whole request line.
            s.write_all(b"GET ")?;
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(format!("{path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok::<_, std::io::Error>(out)
        })
        .unwrap()
        .unwrap()
}

/// The value of the sample line starting with `name` (labels included).
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// Drops of instance `default`, summed over its chains.
fn drops(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("trafficjam_dropped_packets_total{instance=\"default\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_count_transactions_restores_and_kernel_drops() {
    let bed = Testbed::build().expect("build the test bed");
    let _listeners = bed.listen().expect("listeners");
    // Positive control, and backend1 learns backend2's MAC: its attempts
    // below are then TCP segments (each a drop), not one ARP request a
    // second.
    assert!(tcp_connect(
        &bed.backend1,
        ip(addr::B2_4),
        Duration::from_millis(500)
    ));
    let host = bed.host.name().to_string();
    let daemon = Daemon::spawn(
        "ip",
        &[
            &["netns", "exec", &host, BIN, "run", "--metrics"][..],
            &POLICY_ARGS,
        ]
        .concat(),
        &[],
    );
    bed.wait_for_table("trafficjam-default", Duration::from_secs(5));
    wait_for("the metrics endpoint", || {
        bed.host
            .run(|| TcpStream::connect("127.0.0.1:9771").is_ok())
            .unwrap_or(false)
    });
    let m = scrape(&bed, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
    assert!(value(&m, "trafficjam_applies_total") >= 1.0, "{m}");
    assert_eq!(value(&m, "trafficjam_restores_total"), 0.0, "{m}");
    let before = drops(&m);
    // Every chain is reported (which layer drops first depends on
    // br_netfilter).
    for chain in ["inet forward", "inet input", "bridge forward"] {
        let name =
            format!("trafficjam_dropped_packets_total{{instance=\"default\",chain=\"{chain}\"}}");
        value(&m, &name);
    }

    // Three blocked attempts are three (or more: SYN retries) drops.
    for _ in 0..3 {
        assert!(!tcp_connect(
            &bed.backend1,
            ip(addr::B2_4),
            Duration::from_millis(200)
        ));
    }
    let m = scrape(&bed, "/metrics");
    assert!(drops(&m) >= before + 3.0, "{m}");

    // Tampering is restored and counted.
    bed.nft(&["delete", "table", "inet", "trafficjam-default"])
        .unwrap();
    wait_for("a restore to be counted", || {
        value(&scrape(&bed, "/metrics"), "trafficjam_restores_total") >= 1.0
    });
    assert!(scrape(&bed, "/other").starts_with("HTTP/1.1 404"));

    // A second daemon cannot take the same address: it says so and fails.
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &host,
            BIN,
            "run",
            "--subnet",
            addr::MANAGED4,
            "--metrics",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot serve metrics on 127.0.0.1:9771"),
        "{err}"
    );
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}
