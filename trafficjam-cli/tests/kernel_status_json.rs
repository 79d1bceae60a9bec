//! `status --json` is stable: its exact output for a known policy.

use trafficjam_testbed::frame::mac_of;
use trafficjam_testbed::{addr, Netns, Testbed};

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
    let mut got: serde_json::Value =
        serde_json::from_str(&trafficjam(&bed, &["status", "--json"])).unwrap();
    // Counters are numbers; their values depend on what containers sent
    // since (multicast listener reports, say): compare them as zero.
    for list in ["drops", "drops_by_kind"] {
        for d in got["instances"][0][list].as_array_mut().unwrap() {
            for field in ["packets", "bytes"] {
                assert!(d[field].is_u64(), "{d}");
                d[field] = 0.into();
            }
        }
    }
    let drops = |chain: &str| serde_json::json!({"chain": chain, "packets": 0, "bytes": 0});
    // Each port as the kernel's sets have it: the MAC its container has,
    // its addresses and the link-local address that MAC gives.
    let port = |name: &str, role: &str, ns: &Netns, v4: &str, v6: &str| {
        let mac = mac_of(ns, "eth0").unwrap();
        let ll = trafficjam_core::eui64_link_local(mac).to_string();
        let mac: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
        serde_json::json!({
            "name": name, "role": role, "mac": mac.join(":"), "addrs": [v4, v6, ll]
        })
    };
    let kinds = [
        "flows-full",
        "icmp-error",
        "lateral",
        "malformed-arp",
        "non-ip",
        "router",
        "spoofed-arp",
        "spoofed-ip",
        "spoofed-mac",
        "spoofed-nd",
        "to-host",
        "to-proxy",
    ];
    let want = serde_json::json!({
        "instances": [{
            "instance": "web",
            "table": "inet trafficjam-web, bridge trafficjam-web",
            "subnets": [addr::MANAGED4, addr::MANAGED6],
            // The proxy's port holds both: both are whitelisted.
            "whitelist": [addr::PROXY4, addr::PROXY6],
            "allow_host_traffic": false,
            "bridges": ["br-m"],
            "ports": [
                port("vb1", "backend", &bed.backend1, addr::B1_4, addr::B1_6),
                port("vb2", "backend", &bed.backend2, addr::B2_4, addr::B2_6),
                port("vproxy", "proxy", &bed.proxy, addr::PROXY4, addr::PROXY6),
            ],
            "unidentified": [],
            "uplinks": [],
            "allowed": [],
            "proxy_services": [],
            "host_services": [],
            "tracking": "flow-sets",
            "log_blocked_per_second": 7,
            "remote_ports": [],
            "ip_forward": true,
            "blocked_outbound": [],
            "blocked_ingress": [],
            "layers": [
                "inet forward", "inet input", "bridge prerouting", "bridge forward (flow sets)"
            ],
            "drops": [
                drops("inet forward"), drops("inet input"),
                drops("bridge prerouting"), drops("bridge forward"),
                drops("bridge record")
            ],
            "drops_by_kind": kinds.map(drops),
            "intact": true
        }],
        "br_netfilter": true
    });
    assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
}
