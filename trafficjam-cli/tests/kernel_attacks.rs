//! Every attack scenario of the test bed (`trafficjam_testbed::scenario`:
//! VLAN tags, other ethertypes, broadcast/multicast/link-local traffic,
//! forged sources and MACs, ARP/NA poisoning, MAC theft, rogue RAs,
//! redirects, DAD denial, whole and fragmented SYNs and UDP requests,
//! traffic routed back onto the bridge by the host, ICMP errors about
//! others' flows; all by backend1, and ARP poisoning by a port attached
//! after the rules) against backend2, the proxy and the host, with
//! br_netfilter on and off:
//!
//! 1. on a fresh bed without trafficjam the attack must work (positive
//!    control, read on the receiving side);
//! 2. on another fresh bed (the first one's caches are poisoned) with
//!    `trafficjam apply` run before the first packet, the same attack must
//!    not work, read on the receiving side again, and the proxy must still
//!    reach both backends over TCP and UDP, IPv4 and IPv6.
//!
//! Which kind of drop counter rose (`status --json`, `drops_by_kind`,
//! counted from just before the attack's first frame) is printed for each
//! scenario, with the whole table. Every failure names its scenario and
//! what arrived. Scenarios run a few at a time, each on its own beds.
//! Root and the tools are required: nothing is skipped.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trafficjam_testbed::cli::Daemon;
use trafficjam_testbed::scenario::{self, Observation, Scenario, Stage};
use trafficjam_testbed::{assert_matrix, matrix, topology::policy_flows, Flow, Proto};
use trafficjam_testbed::{Testbed, POLICY_ARGS};

const BIN: &str = env!("CARGO_BIN_EXE_trafficjam");

/// How long a positive control may take to show its effect (it returns
/// as soon as it does; the slowest take about 200 ms on a loaded machine).
const CONTROL_WAIT: Duration = Duration::from_secs(2);

/// How long a protected run waits for an effect that must not come, at
/// least: twice what the positive control took, when that was longer (a
/// loaded machine), up to MAX_WINDOW. A control slower than half the
/// window fails the scenario: the window would then prove little.
const WINDOW: Duration = Duration::from_millis(800);
const MAX_WINDOW: Duration = Duration::from_secs(3);

/// Timeout of each probe of the legitimate flows.
const PROBE: Duration = Duration::from_secs(1);

/// Scenarios run at once, each on its own beds.
const WORKERS: usize = 6;

/// Drop counters (packets) by kind.
type Counters = BTreeMap<String, u64>;

fn set_br_netfilter(bed: &Testbed, on: bool) {
    let v = if on { "1" } else { "0" };
    bed.host
        .sysctls(&[
            ("net.bridge.bridge-nf-call-iptables", v),
            ("net.bridge.bridge-nf-call-ip6tables", v),
        ])
        .expect("set br_netfilter in the bed's host namespace (modprobe br_netfilter)");
}

fn apply(bed: &Testbed) {
    let mut args = vec!["apply"];
    args.extend(POLICY_ARGS);
    bed.trafficjam(BIN, &args);
}

fn status(bed: &Testbed) -> serde_json::Value {
    let text = bed.trafficjam(BIN, &["status", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status JSON: {e}: {text}"))
}

/// `status --json` → `instances[0].drops_by_kind`, by kind.
fn drops_by_kind(bed: &Testbed) -> Counters {
    let v = status(bed);
    v["instances"][0]["drops_by_kind"]
        .as_array()
        .unwrap_or_else(|| panic!("no drops_by_kind in {v}"))
        .iter()
        .map(|d| {
            (
                d["chain"].as_str().expect("kind").to_string(),
                d["packets"].as_u64().expect("packets"),
            )
        })
        .collect()
}

/// The flows the policy must keep working whatever a backend does: the
/// proxy to each backend, TCP and UDP, IPv4 and IPv6.
fn legitimate_flows() -> Vec<Flow> {
    policy_flows(true, false)
        .into_iter()
        .filter(|f| {
            f.from == "proxy"
                && f.label.starts_with("proxy -> backend")
                && matches!(f.proto, Proto::Tcp | Proto::Udp)
        })
        .collect()
}

fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// One scenario, both runs.
struct Row {
    name: String,
    control: Result<Observation, String>,
    protected: Result<Observation, String>,
    /// Kinds whose counters rose during the protected attack.
    rose: Vec<(String, u64)>,
    /// Legitimate flows that failed after the protected attack.
    broken: Vec<String>,
    /// A failure outside the scenario (bed, apply, status).
    harness: Option<String>,
    /// How long the protected run waited.
    window: Duration,
}

fn run_scenario(sc: &Scenario, br_netfilter: bool) -> Row {
    let mut row = Row {
        name: sc.name.clone(),
        control: Err("not run".into()),
        protected: Err("not run".into()),
        rose: Vec::new(),
        broken: Vec::new(),
        harness: None,
        window: WINDOW,
    };
    let harness = catch_unwind(AssertUnwindSafe(|| {
        // (a) Positive control: no trafficjam.
        {
            let stage = Stage::build(CONTROL_WAIT).expect("build the test bed");
            set_br_netfilter(&stage.bed, br_netfilter);
            row.control = catch_unwind(AssertUnwindSafe(|| sc.run(&stage))).map_err(panic_text);
        }
        // (b) A fresh bed, trafficjam before the first packet, watched for
        // at least twice as long as the control needed.
        if let Ok(Observation {
            after: Some(took), ..
        }) = &row.control
        {
            row.window = (*took * 2).clamp(WINDOW, MAX_WINDOW);
        }
        let mut stage = Stage::build(row.window).expect("build the test bed");
        set_br_netfilter(&stage.bed, br_netfilter);
        // A port attached after the rules is the daemon's to follow: it
        // watches the bridge and quarantines a new port until it knows
        // whose it is (a one-shot `apply` knows only the ports it saw).
        let _daemon = if sc.name.contains("attached after the rules") {
            let netns = stage.bed.host.path();
            let mut args = vec!["run", "--netns", netns.to_str().unwrap()];
            args.extend(POLICY_ARGS);
            let d = Daemon::spawn(BIN, &args, &[]);
            stage
                .bed
                .wait_for_table("trafficjam-default", std::time::Duration::from_secs(5));
            Some(d)
        } else {
            apply(&stage.bed);
            None
        };
        // The sysctl is the bed host's own (per namespace on this kernel).
        assert_eq!(
            status(&stage.bed)["br_netfilter"],
            br_netfilter,
            "status does not see br_netfilter {br_netfilter}"
        );
        let at_arm: Arc<Mutex<Option<Counters>>> = Arc::default();
        {
            let at_arm = at_arm.clone();
            stage.on_arm(move |bed| *at_arm.lock().unwrap() = Some(drops_by_kind(bed)));
        }
        let baseline = drops_by_kind(&stage.bed);
        row.protected = catch_unwind(AssertUnwindSafe(|| sc.run(&stage))).map_err(panic_text);
        let after = drops_by_kind(&stage.bed);
        let before = at_arm.lock().unwrap().take().unwrap_or(baseline);
        row.rose = after
            .iter()
            .filter_map(|(k, n)| {
                let d = n - before.get(k).copied().unwrap_or(0);
                (d > 0).then(|| (k.clone(), d))
            })
            .collect();
        let outcomes = matrix::run(&legitimate_flows(), |l| stage.bed.ns(l), PROBE);
        row.broken = outcomes
            .iter()
            .filter(|o| !o.reached)
            .map(|o| format!("{} {} {}", o.flow.label, o.flow.proto, o.flow.to))
            .collect();
    }));
    if let Err(e) = harness {
        row.harness = Some(panic_text(e));
    }
    row
}

fn control_cell(r: &Result<Observation, String>) -> String {
    match r {
        Ok(o) if o.succeeded && o.caveat.is_none() => {
            format!("works ({} ms)", o.after.unwrap_or_default().as_millis())
        }
        Ok(o) if o.succeeded => "works, with a caveat".into(),
        Ok(_) => "NO EFFECT".into(),
        Err(_) => "PANICKED".into(),
    }
}

fn protected_cell(r: &Result<Observation, String>) -> &'static str {
    match r {
        Ok(o) if o.succeeded => "GOT THROUGH",
        Ok(_) => "blocked",
        Err(_) => "PANICKED",
    }
}

/// Every scenario with br_netfilter `on` or off; panics listing every
/// scenario that did not behave, after printing the whole table.
fn all_scenarios(br_netfilter: bool) {
    trafficjam_testbed::require_root();
    let mode = if br_netfilter { "on" } else { "off" };
    let start = Instant::now();

    // The whole policy matrix once on a protected bed of this mode.
    {
        let bed = Testbed::build().expect("build the test bed");
        set_br_netfilter(&bed, br_netfilter);
        let _listeners = bed.listen().expect("listeners");
        apply(&bed);
        let outcomes = matrix::run(&policy_flows(true, false), |l| bed.ns(l), PROBE);
        assert_matrix(&format!("policy, br_netfilter {mode}"), &outcomes);
    }

    let scenarios = scenario::selected();
    let rows = scenario::parallel(&scenarios, WORKERS, |sc| run_scenario(sc, br_netfilter));

    let mut table = String::from(
        "| scenario | br_netfilter | control | with trafficjam | counters that rose |\n\
         |---|---|---|---|---|\n",
    );
    let mut bad = Vec::new();
    for r in &rows {
        let rose = if r.rose.is_empty() {
            "none".to_string()
        } else {
            r.rose
                .iter()
                .map(|(k, n)| format!("{k} +{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        table.push_str(&format!(
            "| {} | {mode} | {} | {} | {rose} |\n",
            r.name,
            control_cell(&r.control),
            protected_cell(&r.protected)
        ));
        let what = |o: &Result<Observation, String>| match o {
            Ok(o) => o.evidence.clone(),
            Err(e) => format!("panicked: {e}"),
        };
        match &r.control {
            Ok(o) if o.succeeded && o.caveat.is_none() && o.after.unwrap_or_default() > r.window / 2 => {
                bad.push(format!(
                    "[br_netfilter {mode}] {}: the positive control took {} ms, too close to the {} ms window of the protected run: {}",
                    r.name,
                    o.after.unwrap_or_default().as_millis(),
                    r.window.as_millis(),
                    o.evidence
                ))
            }
            Ok(o) if o.succeeded && o.caveat.is_none() => {}
            other => bad.push(format!(
                "[br_netfilter {mode}] {}: the positive control failed{}: {}",
                r.name,
                other
                    .as_ref()
                    .ok()
                    .and_then(|o| o.caveat.as_ref())
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default(),
                what(other)
            )),
        }
        match &r.protected {
            Ok(o) if !o.succeeded => {}
            Ok(o) => bad.push(format!(
                "[br_netfilter {mode}] {}: GOT THROUGH trafficjam after {} ms: {} (counters that rose: {rose})",
                r.name,
                o.after.unwrap_or_default().as_millis(),
                o.evidence
            )),
            Err(e) => bad.push(format!(
                "[br_netfilter {mode}] {}: panicked with trafficjam: {e}",
                r.name
            )),
        }
        if !r.broken.is_empty() {
            bad.push(format!(
                "[br_netfilter {mode}] {}: legitimate flows broken after the attack: {}",
                r.name,
                r.broken.join(", ")
            ));
        }
        if let Some(h) = &r.harness {
            bad.push(format!("[br_netfilter {mode}] {}: harness: {h}", r.name));
        }
    }
    println!("{table}");
    for r in &rows {
        if let Ok(o) = &r.protected {
            println!("[br_netfilter {mode}] {}: {}", r.name, o.evidence);
        }
    }
    println!(
        "br_netfilter {mode}: {} scenarios, {} beds, in {:.1} s",
        rows.len(),
        2 * rows.len() + 1,
        start.elapsed().as_secs_f64()
    );
    assert!(
        bad.is_empty(),
        "{} problem(s) with br_netfilter {mode}:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn attacks_fail_with_br_netfilter_on() {
    all_scenarios(true);
}

#[test]
fn attacks_fail_with_br_netfilter_off() {
    all_scenarios(false);
}
