//! Whole-process cost of installing one dual-stack policy three ways, in
//! one run, side by side:
//!
//! 1. `trafficjam apply` (one process, one NFNETLINK transaction);
//! 2. `nft -f` of the same ruleset (the text `trafficjam plan` prints);
//! 3. the original tool's approach: one `iptables`/`ip6tables` process per
//!    rule.
//!
//! Each sample starts from an empty namespace (teardown is not timed). All
//! three are plain child processes of the benchmark, which runs inside a
//! namespace of its own, so process start-up costs the same for each.
//! Needs root. Build the release binary first (`scripts/bench.sh` does).

use std::path::PathBuf;
use std::process::Command;

use trafficjam_benches::{median, time_with_setup, us};
use trafficjam_testbed::Netns;

const SUBNET4: &str = "10.77.1.0/24";
const SUBNET6: &str = "fd77:1::/64";
const PROXY4: &str = "10.77.1.10";
const PROXY6: &str = "fd77:1::10";
const RUNS: usize = 100;

/// The binary users run: the static musl build (`TRAFFICJAM_BIN` to
/// measure another one).
fn trafficjam_bin() -> PathBuf {
    let path = std::env::var_os("TRAFFICJAM_BIN").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/x86_64-unknown-linux-musl/release/trafficjam")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} not found: run scripts/bench.sh, which builds the static release binary",
        path.display()
    );
    path
}

/// Run a command in the benchmark's namespace. The benchmark process moved
/// itself into that namespace at start, so children inherit it and no
/// wrapper process (`ip netns exec`) is timed.
fn run(_ns: &Netns, args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The original tool's rules, one process each (its IPv4 sequence, and the
/// same for IPv6 so both sides enforce the same dual-stack policy).
fn iptables_sequence() -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    for (bin, subnet, proxy) in [
        ("iptables", SUBNET4, PROXY4),
        ("ip6tables", SUBNET6, PROXY6),
    ] {
        let c = |s: &str| {
            std::iter::once(bin.to_string())
                .chain(s.split(' ').map(str::to_string))
                .collect::<Vec<_>>()
        };
        cmds.push(c("-t filter -N TRAFFICJAM"));
        cmds.push(c("-t filter -I FORWARD -j TRAFFICJAM"));
        cmds.push(c(&format!(
            "-t filter -I TRAFFICJAM -s {subnet} -d {subnet} -j DROP"
        )));
        cmds.push(c(&format!(
            "-t filter -I TRAFFICJAM -s {proxy} -d {subnet} -j RETURN"
        )));
        cmds.push(c(&format!(
            "-t filter -I TRAFFICJAM -s {subnet} -d {subnet} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
        )));
        cmds.push(c("-t filter -N TRAFFICJAM_INPUT"));
        cmds.push(c("-t filter -I INPUT -j TRAFFICJAM_INPUT"));
        cmds.push(c(&format!(
            "-t filter -I TRAFFICJAM_INPUT -s {subnet} -j DROP"
        )));
        cmds.push(c(&format!(
            "-t filter -I TRAFFICJAM_INPUT -s {subnet} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
        )));
    }
    cmds
}

/// Move the calling (main) thread into `ns`; processes it spawns start there.
fn enter(ns: &Netns) {
    let file = std::fs::File::open(ns.path()).expect("open namespace");
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

fn main() {
    let bin = trafficjam_bin();
    let bin = bin.to_str().expect("utf-8 path");
    let ns = Netns::new("tjbenchp").expect("create a network namespace (run as root)");
    enter(&ns);
    let policy = [
        "--subnet",
        SUBNET4,
        "--subnet",
        SUBNET6,
        "--whitelist-ip",
        PROXY4,
        "--whitelist-ip",
        PROXY6,
    ];

    let mut apply_args = vec![bin, "apply"];
    apply_args.extend(policy);
    let mut plan_args = vec!["plan"];
    plan_args.extend(policy);
    let out = Command::new(bin).args(&plan_args).output().expect("plan");
    assert!(out.status.success(), "trafficjam plan failed");
    let file = std::env::temp_dir().join(format!("tj-bench-{}.nft", std::process::id()));
    std::fs::write(&file, &out.stdout).expect("write ruleset");
    let file_s = file.to_str().expect("utf-8 path");
    // Interleaved, so that drift in the machine's load hits both alike.
    let (mut tj, mut nft) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        tj.extend(time_with_setup(
            1,
            || run(&ns, &[bin, "clear"]),
            || run(&ns, &apply_args),
        ));
        nft.extend(time_with_setup(
            1,
            || run(&ns, &[bin, "clear"]),
            || run(&ns, &["nft", "-f", file_s]),
        ));
    }
    let _ = std::fs::remove_file(&file);
    run(&ns, &[bin, "clear", "--all"]);

    let cmds = iptables_sequence();
    let teardown: Vec<Vec<&str>> = ["iptables", "ip6tables"]
        .iter()
        .flat_map(|b| [vec![*b, "-F"], vec![*b, "-X"]])
        .collect();
    let mut ipt = time_with_setup(
        RUNS / 3,
        || teardown.iter().for_each(|t| run(&ns, t)),
        || {
            for c in &cmds {
                let c: Vec<&str> = c.iter().map(String::as_str).collect();
                run(&ns, &c);
            }
        },
    );

    // The floor: starting the binary and doing nothing.
    let mut start = time_with_setup(RUNS, || (), || run(&ns, &[bin, "--version"]));

    let (tj, nft, ipt) = (median(&mut tj), median(&mut nft), median(&mut ipt));
    let start = median(&mut start);
    println!("install one dual-stack policy (median of {RUNS} runs, whole processes):");
    println!("  binary: {bin}");
    println!(
        "  trafficjam --version       {:>9.0} µs  (process start floor)",
        us(start)
    );
    println!("  trafficjam apply           {:>9.0} µs", us(tj));
    println!("  nft -f (same ruleset)      {:>9.0} µs", us(nft));
    println!(
        "  iptables, {} processes    {:>9.0} µs",
        cmds.len(),
        us(ipt)
    );
    println!("  ratio trafficjam / nft      {:.3}", us(tj) / us(nft));
    println!("  ratio trafficjam / iptables {:.3}", us(tj) / us(ipt));
}
