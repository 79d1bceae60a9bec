//! The policy table of DESIGN.md, enforced by the real `trafficjam` binary
//! on a real kernel, in network namespaces this test creates. Rules are
//! applied before any traffic (cold neighbour caches), every "blocked" flow
//! has its positive control after `clear`, and listeners prove that nothing
//! arrived where nothing should.

use std::time::Duration;

use trafficjam_testbed::{
    addr, assert_matrix, ip, matrix, topology::policy_flows, Testbed, POLICY_ARGS,
};

const TIMEOUT: Duration = Duration::from_millis(600);

/// Run the binary against the bed's host namespace; it must succeed.
fn trafficjam(bed: &Testbed, args: &[&str]) -> String {
    bed.trafficjam(env!("CARGO_BIN_EXE_trafficjam"), args)
}

fn policy_args(allow_host: bool) -> Vec<&'static str> {
    let mut v = POLICY_ARGS.to_vec();
    if allow_host {
        v.push("--allow-host-traffic");
    }
    v
}

fn apply(bed: &Testbed, allow_host: bool) -> String {
    let mut args = vec!["apply"];
    args.extend(policy_args(allow_host));
    trafficjam(bed, &args)
}

fn ruleset(bed: &Testbed) -> String {
    let out = bed.nft(&["list", "ruleset"]).expect("run nft");
    assert!(out.status.success(), "nft list ruleset failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `nft list ruleset` without counter values and without the flows the
/// packet path put in dynamic sets (each with its expiry), for idempotence
/// checks: both are state, not configuration.
fn ruleset_without_counters(bed: &Testbed) -> String {
    ruleset(bed)
        .lines()
        .filter(|l| !l.contains(" expires "))
        .map(|l| match l.find("counter packets") {
            Some(i) => format!("{}counter", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The kernel handles of every object: a re-created table, set, chain or
/// rule gets new handles, so equal handles mean nothing was replaced.
fn handles(bed: &Testbed) -> String {
    let out = bed.nft(&["-a", "list", "ruleset"]).expect("run nft");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("# handle").nth(1))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn policy_matrix_idempotence_allow_host_and_clear() {
    let bed = Testbed::build().expect("build the test bed");
    let listeners = bed.listen().expect("start listeners");

    // 1. Rules first, then the first packet ever.
    let out = apply(&bed, false);
    assert!(out.contains("created"), "{out}");
    let outcomes = matrix::run(&policy_flows(true, false), |l| bed.ns(l), TIMEOUT);
    assert_matrix("policy enforced (cold caches)", &outcomes);
    // Nothing from a backend arrived at the other backend or the proxy.
    for target in ["backend1", "backend2", "proxy"] {
        let got = listeners.arrivals(target);
        for from in [addr::B1_4, addr::B1_6, addr::B2_4, addr::B2_6] {
            assert!(
                !got.tcp.contains(&ip(from)) && !got.udp.contains(&ip(from)),
                "{from} reached {target}: {got:?}"
            );
        }
    }

    // 2. nft itself reads back everything installed.
    let text = ruleset(&bed);
    assert!(text.contains("table inet trafficjam-default"), "{text}");
    assert!(text.contains("comment \"managed by trafficjam\""), "{text}");
    let json = bed.nft(&["-j", "list", "ruleset"]).expect("nft -j");
    assert!(
        json.status.success(),
        "nft -j list ruleset failed: {json:?}"
    );
    assert!(String::from_utf8_lossy(&json.stdout).contains("trafficjam-default"));

    // 3. Applying the same policy again changes nothing in the kernel.
    let (before, handles_before) = (ruleset_without_counters(&bed), handles(&bed));
    let out = apply(&bed, false);
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(ruleset_without_counters(&bed), before);
    assert_eq!(handles(&bed), handles_before, "objects were re-created");

    // 4. status reads the policy back from the kernel, with drop counters.
    let status = trafficjam(&bed, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let inst = &v["instances"][0];
    assert_eq!(inst["instance"], "default");
    assert_eq!(inst["intact"], true);
    assert_eq!(inst["allow_host_traffic"], false);
    assert_eq!(
        inst["subnets"],
        serde_json::json!([addr::MANAGED4, addr::MANAGED6])
    );
    assert_eq!(
        inst["whitelist"],
        serde_json::json!([addr::PROXY4, addr::PROXY6])
    );
    let drops: u64 = inst["drops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["packets"].as_u64().unwrap())
        .sum();
    assert!(drops > 0, "blocked probes were not counted: {status}");

    // 5. --allow-host-traffic: host reachable, backends still apart.
    let out = apply(&bed, true);
    assert!(out.contains("replaced"), "{out}");
    bed.flush_neighbours().unwrap();
    let outcomes = matrix::run(&policy_flows(true, true), |l| bed.ns(l), TIMEOUT);
    assert_matrix("policy enforced, host traffic allowed", &outcomes);

    // 6. clear leaves no trace, and every flow works again: the positive
    //    control of every "blocked" above.
    let out = trafficjam(&bed, &["clear"]);
    assert!(
        out.contains("removed table inet trafficjam-default"),
        "{out}"
    );
    let text = ruleset(&bed);
    assert!(!text.contains("trafficjam"), "clear left: {text}");
    let outcomes = matrix::run(&policy_flows(false, false), |l| bed.ns(l), TIMEOUT);
    assert_matrix("after clear: everything reachable", &outcomes);
    let out = trafficjam(&bed, &["clear"]);
    assert!(out.contains("nothing to clear"), "{out}");
}

#[test]
fn instances_are_independent() {
    let bed = Testbed::build().expect("build the test bed");
    trafficjam(
        &bed,
        &["apply", "--instance", "a", "--subnet", addr::MANAGED4],
    );
    trafficjam(
        &bed,
        &["apply", "--instance", "b", "--subnet", "10.77.2.0/24"],
    );
    // A table of someone else's, named like ours but without our comment.
    let foreign = bed
        .nft(&["add", "table", "inet", "trafficjam-foreign"])
        .unwrap();
    assert!(foreign.status.success());
    trafficjam(&bed, &["clear", "--instance", "a"]);
    let text = ruleset(&bed);
    assert!(!text.contains("trafficjam-a "), "{text}");
    assert!(text.contains("table inet trafficjam-b"), "{text}");
    trafficjam(&bed, &["clear", "--all"]);
    let text = ruleset(&bed);
    assert!(!text.contains("trafficjam-b"), "{text}");
    assert!(
        text.contains("table inet trafficjam-foreign"),
        "clear --all removed a table it does not own: {text}"
    );
}

#[test]
fn plan_output_is_valid_nft_and_matches_what_apply_installs() {
    let bed = Testbed::build().expect("build the test bed");
    let mut args = vec!["plan"];
    args.extend(policy_args(false));
    // Where the bridge is: plan reads its ports, as apply would.
    let plan = trafficjam(&bed, &args);
    // nft accepts it as input…
    let file = std::env::temp_dir().join(format!("tj-plan-{}.nft", std::process::id()));
    std::fs::write(&file, &plan).unwrap();
    let loaded = bed.nft(&["-f", file.to_str().unwrap()]).unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        loaded.status.success(),
        "nft -f rejected plan output: {loaded:?}"
    );
    // …and trafficjam finds exactly its own policy there: nothing to do.
    let out = apply(&bed, false);
    assert!(
        out.contains("nothing changed"),
        "nft-loaded ruleset differs: {out}"
    );
}

/// The whitelist flips many times while two flows are probed without
/// pause: the proxy must never be refused, a backend must never get through.
#[test]
fn whitelist_churn_never_opens_or_breaks_a_flow() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use trafficjam_testbed::probe::tcp_connect;

    const FLIPS: usize = 60;
    let bed = Testbed::build().expect("build the test bed");
    let _listeners = bed.listen().expect("start listeners");
    let base = |extra: bool| {
        let mut v = vec!["apply"];
        v.extend(policy_args(false));
        if extra {
            v.extend(["--whitelist-ip", addr::B1_4, "--whitelist-ip", addr::B1_6]);
        }
        v
    };
    trafficjam(&bed, &base(false));

    let stop = AtomicBool::new(false);
    let (allowed_ok, allowed_failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let (forbidden_tried, forbidden_ok) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for to in [addr::B2_4, addr::B2_6] {
                    if tcp_connect(&bed.proxy, ip(to), Duration::from_secs(2)) {
                        allowed_ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        allowed_failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    for to in [addr::B1_4, addr::B1_6] {
                        forbidden_tried.fetch_add(1, Ordering::Relaxed);
                        if tcp_connect(&bed.backend2, ip(to), Duration::from_millis(100)) {
                            forbidden_ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        for i in 0..FLIPS {
            let out = trafficjam(&bed, &base(i % 2 == 0));
            assert!(out.contains("updated in place"), "flip {i}: {out}");
            std::thread::sleep(Duration::from_millis(15));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let (a_ok, a_fail) = (allowed_ok.into_inner(), allowed_failed.into_inner());
    let (f_tried, f_ok) = (forbidden_tried.into_inner(), forbidden_ok.into_inner());
    println!(
        "{FLIPS} whitelist flips: proxy->backend2 {a_ok} ok / {a_fail} failed; backend2->backend1 {f_ok} of {f_tried} got through"
    );
    assert_eq!(a_fail, 0, "allowed flow failed during churn");
    assert_eq!(f_ok, 0, "forbidden flow got through during churn");
    assert!(
        a_ok > 100,
        "too few allowed probes ({a_ok}) to mean anything"
    );
    assert!(f_tried > 20, "too few forbidden probes ({f_tried})");
}
