//! Tampering: while `trafficjam run` runs (static mode, no Docker), anyone
//! deleting or altering its table gets it restored in one transaction,
//! within milliseconds; changes to other tables are left alone.

use std::time::{Duration, Instant};

use trafficjam_testbed::cli::Daemon;
use trafficjam_testbed::probe::tcp_connect;
use trafficjam_testbed::{addr, ip, Testbed, POLICY_ARGS};

fn nft(bed: &Testbed, args: &[&str]) -> String {
    let out = bed.nft(args).expect("run nft");
    assert!(out.status.success(), "nft {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Our table is there and complete (its last drop rule is present).
fn intact(bed: &Testbed) -> bool {
    bed.nft(&["list", "table", "inet", "trafficjam-default"])
        .map(|o| {
            let t = String::from_utf8_lossy(&o.stdout);
            o.status.success()
                && t.contains("iifname @bridges counter")
                && t.contains("elements = { 10.77.1.10 }")
        })
        .unwrap_or(false)
}

/// Wait (polling as fast as nft answers, so the time is precise) until
/// the table is intact; how long that took. Fails after 5 s with `what`.
fn wait_intact(bed: &Testbed, what: &str) -> Duration {
    let start = Instant::now();
    while !intact(bed) {
        assert!(start.elapsed() < Duration::from_secs(5), "{what}");
    }
    start.elapsed()
}

#[test]
fn tampering_is_repaired_and_other_tables_are_left_alone() {
    let bed = Testbed::build().expect("build the test bed");
    let _listeners = bed.listen().expect("listeners");
    let daemon = spawn(&bed);
    wait_intact(&bed, "daemon never applied");

    let mut times = Vec::new();
    let tampers: [&[&str]; 5] = [
        &["delete", "table", "inet", "trafficjam-default"],
        &["flush", "ruleset"],
        &["flush", "chain", "inet", "trafficjam-default", "forward"],
        &[
            "delete",
            "element",
            "inet",
            "trafficjam-default",
            "whitelist4",
            "{ 10.77.1.10 }",
        ],
        &["delete", "chain", "inet", "trafficjam-default", "input"],
    ];
    for t in tampers {
        nft(&bed, t);
        let took = wait_intact(&bed, "the rules were not restored");
        println!("nft {}: restored after {took:?}", t.join(" "));
        times.push(took);
        // Isolation holds again.
        assert!(!tcp_connect(
            &bed.backend1,
            ip(addr::B2_4),
            Duration::from_millis(300)
        ));
        assert!(tcp_connect(
            &bed.proxy,
            ip(addr::B2_6),
            Duration::from_secs(2)
        ));
    }
    times.sort();
    let worst = *times.last().unwrap();
    assert!(
        worst < Duration::from_millis(100),
        "restoring took {worst:?}"
    );

    // Other tools' tables: created, changed, deleted; ours is not touched.
    let before = nft(&bed, &["-a", "list", "table", "inet", "trafficjam-default"]);
    nft(&bed, &["add", "table", "inet", "other"]);
    nft(&bed, &["add", "chain", "inet", "other", "c"]);
    nft(&bed, &["add", "rule", "inet", "other", "c", "counter"]);
    nft(&bed, &["delete", "table", "inet", "other"]);
    std::thread::sleep(Duration::from_millis(200));
    let after = nft(&bed, &["-a", "list", "table", "inet", "trafficjam-default"]);
    assert_eq!(
        before, after,
        "changes to another table made trafficjam rewrite its own"
    );
    let (_, log) = daemon.stop();
    println!("{log}");
    // `nft flush ruleset` removes both of the instance's tables (inet and
    // bridge): six restores for five tamperings.
    assert_eq!(
        log.matches("changed from outside; restored").count(),
        6,
        "expected one restore per tampering: {log}"
    );
    println!(
        "restore times: min {:?}, median {:?}, max {worst:?}",
        times[0],
        times[times.len() / 2]
    );
}

fn spawn(bed: &Testbed) -> Daemon {
    let netns = bed.host.path();
    let netns = netns.to_str().expect("utf-8 path");
    Daemon::spawn(
        env!("CARGO_BIN_EXE_trafficjam"),
        &[&["run", "--netns", netns][..], &POLICY_ARGS].concat(),
        &[],
    )
}

#[test]
fn killed_daemon_leaves_rules_and_a_restart_adopts_them() {
    let bed = Testbed::build().expect("build the test bed");
    let first = spawn(&bed);
    wait_intact(&bed, "daemon never applied");
    let handles = || -> String {
        nft(&bed, &["-a", "list", "ruleset"])
            .lines()
            .filter_map(|l| l.split("# handle").nth(1))
            .collect::<Vec<_>>()
            .join(",")
    };
    let before = handles();
    // A crash: no chance to clean up.
    first.crash();
    assert!(intact(&bed), "the rules went away with the process");
    assert!(!tcp_connect(
        &bed.backend1,
        ip(addr::B2_4),
        Duration::from_millis(300)
    ));
    // The restart adopts what is there: same objects, nothing duplicated.
    let second = spawn(&bed);
    std::thread::sleep(Duration::from_millis(500));
    let (_, log) = second.stop();
    assert!(
        log.contains("already enforced") || !log.contains("created"),
        "{log}"
    );
    assert!(
        !log.contains("replaced"),
        "the restart rebuilt the table: {log}"
    );
    assert_eq!(handles(), before, "objects were re-created");
    assert_eq!(
        nft(&bed, &["list", "tables"]).matches("trafficjam").count(),
        2
    );
}
