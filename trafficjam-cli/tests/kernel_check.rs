//! `trafficjam check` end to end: it passes on this machine with the exact
//! matrix the policy requires, fails with a clear reason without
//! CAP_NET_ADMIN, and leaves nothing behind — also when interrupted.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use trafficjam_testbed::require_root;

/// The tests compare the host's interfaces before and after: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn check(prefix: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_trafficjam");
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("check").output().expect("run trafficjam check")
}

/// Names of the host's interfaces, and its nftables tables.
fn host_state() -> (BTreeSet<String>, String) {
    let links = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    (links, String::from_utf8_lossy(&tables.stdout).into_owned())
}

/// Every network namespace any process holds open or lives in.
fn namespaces_in_use() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for proc_dir in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = proc_dir.path();
        for sub in ["fd", "task"] {
            let Ok(entries) = std::fs::read_dir(p.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let link = if sub == "fd" {
                    e.path()
                } else {
                    e.path().join("ns/net")
                };
                if let Ok(target) = std::fs::read_link(link) {
                    let t = target.to_string_lossy().into_owned();
                    if t.starts_with("net:[") {
                        out.insert(t);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn check_passes_with_the_required_matrix_and_leaves_no_trace() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = host_state();
    let out = check(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for needle in [
        "✓ CAP_NET_ADMIN",
        "✓ nf_tables",
        "without rules: 36 of 36 connections made",
        "read back intact",
        "✓ 36 of 36 probes as the policy requires",
        "✓ 8 of 8 attacks work without rules and are stopped by the policy",
        "result: every check passed",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing in:\n{stdout}");
    }
    // Every row, cell by cell.
    let rows = [
        ("proxy → backend1", "✓", "connects"),
        ("proxy → backend2", "✓", "connects"),
        ("backend1 → backend2", "✗", "blocked"),
        ("backend2 → backend1", "✗", "blocked"),
        ("backend1 → proxy", "✗", "blocked"),
        ("backend2 → proxy", "✗", "blocked"),
        ("backend1 → host", "✗", "blocked"),
        ("backend2 → host", "✗", "blocked"),
        ("proxy → host", "✗", "blocked"),
    ];
    for (pair, cell, verdict) in rows {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{pair} ")))
            .unwrap_or_else(|| panic!("no row {pair:?} in:\n{stdout}"));
        let words: Vec<&str> = line[line.find(pair).unwrap() + pair.len()..]
            .split_whitespace()
            .collect();
        assert_eq!(words, [cell, cell, cell, cell, verdict], "row {line:?}");
    }
    // Every attack, both columns: it works without rules, not with them.
    let attacks = stdout
        .lines()
        .skip_while(|l| !l.contains("attacks from backend1"))
        .skip(2)
        .take_while(|l| l.starts_with("    "))
        .collect::<Vec<_>>();
    assert_eq!(attacks.len(), 8, "{stdout}");
    for line in attacks {
        assert!(
            line.contains("✓ works") && line.trim_end().ends_with("✗ stopped"),
            "attack row {line:?}"
        );
    }
    assert!(!stdout.contains('!') && !stdout.contains('?'), "{stdout}");
    assert_eq!(
        host_state(),
        before,
        "check changed the host's interfaces or tables"
    );
}

#[test]
fn check_without_cap_net_admin_fails_and_says_why() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = check(&["setpriv", "--bounding-set=-net_admin", "--"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("✗ CAP_NET_ADMIN    missing"), "{stdout}");
    assert!(stdout.contains("--cap-add NET_ADMIN"), "{stdout}");
    assert!(stdout.contains("✗ skipped: building the lab"), "{stdout}");
    assert!(!stdout.contains("every check passed"), "{stdout}");
    assert!(stderr.contains("check failed: CAP_NET_ADMIN"), "{stderr}");

    // With CAP_NET_ADMIN but without CAP_SYS_ADMIN no namespace can be made.
    let out = check(&["setpriv", "--bounding-set=-sys_admin", "--"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("cannot create a network namespace"),
        "{stdout}"
    );
    assert!(stdout.contains("CAP_SYS_ADMIN"), "{stdout}");
}

/// Interrupted or killed while the rules are in place and probes are
/// running, check leaves no namespace, interface or table: nothing but
/// its file descriptors held the lab.
#[test]
fn interrupted_check_leaves_nothing() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = host_state();
    for signal in [nix::sys::signal::SIGINT, nix::sys::signal::SIGKILL] {
        let in_use = namespaces_in_use();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trafficjam"));
        cmd.arg("check")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SIGINT as a terminal's Ctrl-C delivers it: a test run started in
        // the background of a shell inherits SIGINT ignored (POSIX), and
        // check would then finish and exit 0 instead.
        // SAFETY: between fork and exec only signal(2) runs, which is
        // async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::signal::signal(
                    nix::sys::signal::SIGINT,
                    nix::sys::signal::SigHandler::SigDfl,
                )
                .map(|_| ())
                .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait until the lab is built and probed once; the policy goes in next.
        let seen = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("without rules:"));
        assert!(seen, "check never got to its lab");
        let lab: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|t| t.to_string_lossy().into_owned())
            .filter(|t| t.starts_with("net:[") && !in_use.contains(t))
            .collect();
        assert!(
            lab.len() >= 4,
            "expected the lab's 4 namespaces, saw {lab:?}"
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{signal:?}: {status:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let still: Vec<_> = namespaces_in_use().intersection(&lab).cloned().collect();
            if still.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{signal:?}: lab namespaces still held: {still:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            host_state(),
            before,
            "{signal:?} left something on the host"
        );
    }
}
