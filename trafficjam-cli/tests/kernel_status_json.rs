//! `status --json` is stable: its exact output for a known policy.

use trafficjam_testbed::{addr, Testbed};

fn trafficjam(bed: &Testbed, args: &[&str]) -> String {
    bed.trafficjam(env!("CARGO_BIN_EXE_trafficjam"), args)
}

#[test]
fn status_json_is_exactly_the_documented_document() {
    let bed = Testbed::build().expect("build the test bed");
    trafficjam(
        &bed,
        &[
            "apply",
            "--instance",
            "web",
            "--subnet",
            addr::MANAGED4,
            "--subnet",
            addr::MANAGED6,
            "--whitelist-ip",
            addr::PROXY4,
            "--whitelist-port",
            "vproxy",
            "--log-blocked",
            "7",
        ],
    );
    let got: serde_json::Value =
        serde_json::from_str(&trafficjam(&bed, &["status", "--json"])).unwrap();
    let drops = |chain: &str| serde_json::json!({"chain": chain, "packets": 0, "bytes": 0});
    let want = serde_json::json!({
        "instances": [{
            "instance": "web",
            "table": "inet trafficjam-web, bridge trafficjam-web",
            "subnets": [addr::MANAGED4, addr::MANAGED6],
            "whitelist": [addr::PROXY4],
            "allow_host_traffic": false,
            "whitelist_ports": ["vproxy"],
            "log_blocked_per_second": 7,
            "layers": ["inet forward", "inet input", "bridge forward (stateless)"],
            "drops": [drops("inet forward"), drops("inet input"), drops("bridge forward")],
            "intact": true
        }],
        "br_netfilter": true
    });
    assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
}
