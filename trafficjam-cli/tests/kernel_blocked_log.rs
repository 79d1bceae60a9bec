//! The blocked-connection log (static mode): a backend trying to reach
//! another (it gets no further than asking for its MAC address) and
//! trying to connect to the proxy each produce exactly the expected line,
//! and a flood yields at most the configured rate of lines.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use trafficjam_testbed::cli::Daemon;
use trafficjam_testbed::listener::UDP_PORT;
use trafficjam_testbed::probe::tcp_connect;
use trafficjam_testbed::{addr, ip, Testbed, POLICY_ARGS};

const RATE: u32 = 5;

#[test]
fn blocked_attempts_are_reported_by_name_and_rate_limited() {
    let bed = Testbed::build().expect("build the test bed");
    let _listeners = bed.listen().expect("listeners");
    let netns = bed.host.path();
    let rate = RATE.to_string();
    let b1 = format!("{}=backend1", addr::B1_4);
    let b2 = format!("{}=backend2", addr::B2_4);
    let proxy = format!("{}=proxy", addr::PROXY4);
    let daemon = Daemon::spawn(
        env!("CARGO_BIN_EXE_trafficjam"),
        &[
            &["run", "--netns", netns.to_str().unwrap()][..],
            &POLICY_ARGS,
            &[
                "--log-blocked",
                &rate,
                "--name",
                &b1,
                "--name",
                &b2,
                "--name",
                &proxy,
            ],
        ]
        .concat(),
        &[],
    );
    bed.wait_for_table("trafficjam-default", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(100));

    // One attempt at another backend: its ARP request is the line.
    assert!(!tcp_connect(
        &bed.backend1,
        ip(addr::B2_4),
        Duration::from_millis(300)
    ));
    // One attempt at the proxy (whose address it may resolve): one line.
    assert!(!tcp_connect(
        &bed.backend1,
        ip(addr::PROXY4),
        Duration::from_millis(300)
    ));
    // The proxy's allowed connection is not reported.
    assert!(tcp_connect(
        &bed.proxy,
        ip(addr::B2_4),
        Duration::from_secs(1)
    ));

    // A flood of UDP datagrams: at most the rate (plus its burst).
    std::thread::sleep(Duration::from_millis(1200)); // let the bucket refill
    let to = std::net::SocketAddr::new(ip(addr::PROXY4), UDP_PORT);
    let flood = Instant::now();
    bed.backend1
        .run(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..300 {
                let _ = s.send_to(b"flood", to);
            }
        })
        .unwrap();
    let flood_secs = flood.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    if std::env::var_os("TJ_DEBUG").is_some() {
        let out = bed.nft(&["list", "ruleset"]).unwrap();
        println!("{}", String::from_utf8_lossy(&out.stdout));
    }
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
    println!("{log}");

    let arp: Vec<&str> = log.lines().filter(|l| l.contains("arp who-has")).collect();
    assert!(!arp.is_empty(), "{log}");
    assert!(
        arp.iter()
            .all(|l| l
                .ends_with("blocked backend1 (10.77.1.11) → backend2 (10.77.1.12) arp who-has")),
        "{log}"
    );
    let tcp: Vec<&str> = log.lines().filter(|l| l.contains("tcp/8080")).collect();
    assert_eq!(tcp.len(), 1, "{log}");
    assert!(
        tcp[0].ends_with("blocked backend1 (10.77.1.11) → proxy (10.77.1.10) tcp/8080"),
        "{log}"
    );
    assert!(
        !log.contains("blocked proxy"),
        "the proxy's allowed connection was logged: {log}"
    );
    let udp = log.lines().filter(|l| l.contains("udp/8081")).count();
    let limit = RATE as usize + (RATE as f64 * (flood_secs + 0.3)).ceil() as usize;
    println!("flood of 300 datagrams in {flood_secs:.3}s: {udp} lines (limit {limit})");
    assert!(udp >= 1, "the flood was not reported at all: {log}");
    assert!(udp <= limit, "{udp} lines for a {RATE}/s log: {log}");
}
