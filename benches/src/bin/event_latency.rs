//! Event → enforced, measured from outside the daemon: the tool of
//! `scripts/bench_scale.sh` (root; not a test).
//!
//! It starts and removes containers on a Docker network that a running
//! `trafficjam run` manages, and for each one takes
//!
//! - the instants Docker says the container was connected, started and
//!   died (`timeNano` of its `network connect`, `start` and `die` events,
//!   from `docker events`);
//! - the instants the kernel told the ruleset's listeners (the nf_tables
//!   multicast group) that an element with the container's MAC was added
//!   to (deleted from) the daemon's bridge table: its port bound, and
//!   unbound.
//!
//! Reported: connect → bound (Docker connects a container long before
//! its veth is set up: this is mostly Docker's own time), how long before
//! its process started the port was bound (`bound_before_start`, positive
//! when in time), and die → unbound (the daemon's reaction alone). Both
//! clocks are this host's
//! wall clock. The kernel's messages are kept with the instant they were
//! read, so the one with the container's MAC (asked of Docker once the
//! container runs) is found whichever came first. One container at a
//! time: each measurement is alone on the machine. It also reads the
//! daemon's metrics (Docker API calls, events), CPU time and RSS, before
//! and after, and prints one JSON object.
//!
//! ```text
//! event_latency --network N --table trafficjam-N --image IMG --count 40 \
//!     --pid PID --metrics 127.0.0.1:9771 [--label KEY=VALUE]
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use trafficjam_core::wire::request::notification_table;
use trafficjam_netlink::NetfilterSocket;

/// `NFNLGRP_NFTABLES`.
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFT_MSG_NEWSETELEM`, `NFT_MSG_DELSETELEM`.
const NEWSETELEM: u16 = 12;
const DELSETELEM: u16 = 14;

struct Args {
    network: String,
    table: String,
    image: String,
    count: usize,
    pid: u32,
    metrics: String,
    label: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        network: String::new(),
        table: String::new(),
        image: String::new(),
        count: 40,
        pid: 0,
        metrics: "127.0.0.1:9771".into(),
        label: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--network" => a.network = v,
            "--table" => a.table = v,
            "--image" => a.image = v,
            "--count" => a.count = v.parse().expect("--count"),
            "--pid" => a.pid = v.parse().expect("--pid"),
            "--metrics" => a.metrics = v,
            "--label" => a.label = Some(v),
            _ => panic!("unknown argument {k}"),
        }
    }
    assert!(
        !a.network.is_empty() && !a.table.is_empty() && !a.image.is_empty() && a.pid != 0,
        "usage: event_latency --network N --table T --image IMG --pid PID [--count N] [--metrics ADDR] [--label K=V]"
    );
    a
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A kernel message about the table: (added?, raw bytes, instant).
type Seen = (bool, Vec<u8>, u128);

fn watch_kernel(table: String) -> mpsc::Receiver<Seen> {
    let mut socket = NetfilterSocket::open_in(None).expect("netfilter socket");
    socket
        .join_group(NFNLGRP_NFTABLES)
        .expect("join nf_tables group");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || loop {
        let Ok(messages) = socket.recv_messages(None) else {
            continue;
        };
        let at = now_ns();
        for m in messages {
            if m.len() < 16 || notification_table(&m).is_none_or(|(_, n)| n != table) {
                continue;
            }
            let kind = u16::from_ne_bytes([m[4], m[5]]) & 0xff;
            if (kind == NEWSETELEM || kind == DELSETELEM)
                && tx.send((kind == NEWSETELEM, m, at)).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Docker's container and network events: (action, container id,
/// timeNano).
fn watch_docker() -> mpsc::Receiver<(String, String, u128)> {
    let mut child = Command::new("docker")
        .args([
            "events",
            "--filter",
            "type=network",
            "--filter",
            "type=container",
            "--format",
            "{{json .}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker events");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let action = v["Action"].as_str().unwrap_or_default().to_string();
            let id = v["Actor"]["Attributes"]["container"]
                .as_str()
                .or(v["Actor"]["ID"].as_str())
                .unwrap_or_default()
                .to_string();
            let t = v["timeNano"].as_u64().unwrap_or_default() as u128;
            if tx.send((action, id, t)).is_err() {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    });
    rx
}

fn metrics(addr: &str) -> HashMap<String, f64> {
    let mut s = TcpStream::connect(addr).expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// CPU seconds (user + system) and RSS in KiB of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("daemon stat");
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ticks / hz, rss)
}

/// Nanoseconds each thread of a process has run, by thread id
/// (`/proc/PID/task/TID/schedstat`): a clock-tick count (10 ms) over 40
/// containers cannot tell 9 ms per container from 9.25.
fn thread_cpu_ns(pid: u32) -> std::collections::BTreeMap<u32, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let ns = std::fs::read_to_string(t.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok());
        if let Some(ns) = ns {
            out.insert(tid, ns);
        }
    }
    out
}

/// CPU seconds the process spent between two [`thread_cpu_ns`] readings;
/// `None` when a thread ended in between (its time is then lost: the
/// clock ticks of `/proc/PID/stat` are used instead).
fn cpu_between(
    before: &std::collections::BTreeMap<u32, u64>,
    after: &std::collections::BTreeMap<u32, u64>,
) -> Option<f64> {
    if before.keys().any(|t| !after.contains_key(t)) {
        return None;
    }
    let ns: u64 = after
        .iter()
        .map(|(t, a)| a.saturating_sub(before.get(t).copied().unwrap_or(0)))
        .sum();
    Some(ns as f64 / 1e9)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The instants of the events `actions` of container `id` and of the
/// kernel's change (`added` or deleted) of an element with `mac`.
fn instants(
    events: &mpsc::Receiver<(String, String, u128)>,
    kernel: &mpsc::Receiver<Seen>,
    id: &str,
    actions: &[&str],
    mac: [u8; 6],
    added: bool,
) -> (Vec<u128>, u128) {
    let limit = Duration::from_secs(10);
    let mut at: Vec<Option<u128>> = vec![None; actions.len()];
    while at.iter().any(Option::is_none) {
        let (a, who, t) = events.recv_timeout(limit).expect("the Docker events");
        if who == id {
            if let Some(i) = actions.iter().position(|x| *x == a) {
                at[i].get_or_insert(t);
            }
        }
    }
    let kernel_at = loop {
        let (is_add, bytes, t) = kernel.recv_timeout(limit).expect("the kernel's change");
        if is_add == added && bytes.windows(6).any(|w| w == mac) {
            break t;
        }
    };
    (at.into_iter().flatten().collect(), kernel_at)
}

fn ms(later: u128, earlier: u128) -> f64 {
    (later as f64 - earlier as f64) / 1e6
}

fn main() {
    let a = args();
    let kernel = watch_kernel(a.table.clone());
    let events = watch_docker();
    std::thread::sleep(Duration::from_millis(300));
    // The daemon's threads before the first scrape: a scrape reads the
    // kernel on a thread of tokio's blocking pool, which ends after 10 s
    // idle (were it counted here, its end would lose the precise time).
    let threads0 = thread_cpu_ns(a.pid);
    let m0 = metrics(&a.metrics);
    let (cpu0, rss0) = usage(a.pid);
    let (mut up, mut ahead, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..a.count {
        let name = format!("tjbench-probe-{}-{i}", std::process::id());
        let mut run = vec!["run", "-d", "--name", &name, "--network", &a.network];
        let label;
        if let Some(l) = &a.label {
            // Every other probe is a proxy: whitelisting is measured too.
            if i % 2 == 1 {
                label = l.clone();
                run.extend(["--label", &label]);
            }
        }
        run.push(&a.image);
        // Drain what earlier iterations left.
        while kernel.try_recv().is_ok() {}
        while events.try_recv().is_ok() {}
        let id = docker(&run);
        let f = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").MacAddress}}}}",
            a.network
        );
        let mac = trafficjam_core::model::parse_mac(&docker(&["inspect", "--format", &f, &id]))
            .expect("the container's MAC");
        let (at, bound) = instants(&events, &kernel, &id, &["connect", "start"], mac, true);
        up.push(ms(bound, at[0]));
        ahead.push(ms(at[1], bound));
        docker(&["stop", "-t", "0", &name]);
        let (at, unbound) = instants(&events, &kernel, &id, &["die"], mac, false);
        down.push(ms(unbound, at[0]));
        // Disconnected first: removed while connected, now and then
        // Docker 20.10 keeps a stale endpoint and then refuses to remove
        // the network ("has active endpoints") until it restarts.
        docker(&["network", "disconnect", "-f", &a.network, &name]);
        docker(&["rm", "-f", &name]);
    }
    let m1 = metrics(&a.metrics);
    let (cpu1, rss1) = usage(a.pid);
    let precise = cpu_between(&threads0, &thread_cpu_ns(a.pid));
    let cpu = precise.unwrap_or(cpu1 - cpu0);
    let delta = |k: &str| m1.get(k).copied().unwrap_or(0.0) - m0.get(k).copied().unwrap_or(0.0);
    let events_handled = delta("trafficjam_docker_events_total");
    let api = delta("trafficjam_docker_api_calls_total");
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        serde_json::json!({
            "median_ms": percentile(v, 0.5),
            "p99_ms": percentile(v, 0.99),
            "max_ms": v.last().copied().unwrap_or(f64::NAN),
            "samples": v.len(),
        })
    };
    let out = serde_json::json!({
        "connect_to_bound": summary(&mut up),
        "bound_before_start": summary(&mut ahead),
        "die_to_unbound": summary(&mut down),
        "docker_events": events_handled,
        "docker_api_calls": api,
        "docker_api_calls_per_event": if events_handled > 0.0 { api / events_handled } else { f64::NAN },
        "full_kernel_reads": delta("trafficjam_kernel_reads_total"),
        "interface_reads_per_container": delta("trafficjam_interface_reads_total") / a.count as f64,
        // Transactions (whole or as set elements) per container started
        // and removed, and how many of them were set elements only.
        "transactions_per_container": (delta("trafficjam_applies_total") + delta("trafficjam_apply_errors_total")) / a.count as f64,
        "port_updates_per_container": delta("trafficjam_port_updates_total") / a.count as f64,
        // Every other probe is a proxy: what its leaving costs the kernel.
        "conntrack_walks": delta("trafficjam_conntrack_walks_total"),
        "cpu_seconds": cpu,
        "cpu_ms_per_container": cpu * 1e3 / a.count as f64,
        // Per-thread nanoseconds, or clock ticks (10 ms) when a thread of
        // the daemon ended during the probes and took its time with it.
        "cpu_clock": if precise.is_some() { "schedstat" } else { "ticks" },
        "rss_kib_before": rss0,
        "rss_kib_after": rss1,
        // Live bytes (the allocator's count): what a leak would grow,
        // where RSS stops at the allocator's high-water mark.
        "heap_kib_before": m0.get("trafficjam_heap_bytes").copied().unwrap_or(f64::NAN) / 1024.0,
        "heap_kib_after": m1.get("trafficjam_heap_bytes").copied().unwrap_or(f64::NAN) / 1024.0,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
