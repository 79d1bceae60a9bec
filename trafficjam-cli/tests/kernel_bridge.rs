//! Without br_netfilter (bridged frames never reach the IP hooks), the
//! bridge-family layer alone keeps backends apart, and it is stateful on
//! every kernel: where there is no nf_conntrack_bridge (this one) the flows
//! the proxy opens are remembered in dynamic sets, so a backend reaches the
//! proxy only with replies — no UDP, no TCP, no ping of its own.

use std::time::Duration;

use trafficjam_testbed::{addr, assert_matrix, ip, matrix, Flow, Proto, Testbed, POLICY_ARGS};

fn trafficjam(bed: &Testbed, args: &[&str]) -> String {
    bed.trafficjam(env!("CARGO_BIN_EXE_trafficjam"), args)
}

/// (from, to, IPv4 target, IPv6 target, protocols, allowed)
type Row<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [Proto], bool);

fn flows(enforced: bool) -> Vec<Flow> {
    use addr::*;
    let b = !enforced;
    let all = [Proto::Tcp, Proto::Udp, Proto::Icmp];
    let table: [Row; 9] = [
        ("proxy", "backend1", B1_4, B1_6, &all, true),
        ("proxy", "backend2", B2_4, B2_6, &all, true),
        ("backend1", "backend2", B2_4, B2_6, &all, b),
        ("backend2", "backend1", B1_4, B1_6, &all, b),
        ("backend1", "proxy", PROXY4, PROXY6, &all, b),
        ("backend2", "proxy", PROXY4, PROXY6, &all, b),
        ("backend1", "host gateway", GW4, GW6, &all, b),
        ("backend1", "outside", OUTSIDE4, OUTSIDE6, &all, true),
        ("other", "proxy (unmanaged)", PROXY_U4, PROXY_U6, &all, true),
    ];
    let mut out = Vec::new();
    for (from, to, v4, v6, protos, allowed) in table {
        let from = match from {
            "proxy" => "proxy",
            "backend1" => "backend1",
            "backend2" => "backend2",
            _ => "other",
        };
        for p in protos {
            for a in [v4, v6] {
                out.push(Flow {
                    label: format!("{from} -> {to}"),
                    from,
                    to: ip(a),
                    proto: *p,
                    allowed,
                });
            }
        }
    }
    out
}

#[test]
fn bridge_layer_keeps_backends_apart_without_br_netfilter() {
    let bed = Testbed::build().expect("build the test bed");
    for key in [
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
    ] {
        bed.host.sysctl(key, "0").unwrap();
    }
    let _listeners = bed.listen().expect("listeners");
    trafficjam(&bed, &[&["apply"][..], &POLICY_ARGS].concat());
    let timeout = Duration::from_millis(600);
    let outcomes = matrix::run(&flows(true), |l| bed.ns(l), timeout);
    if std::env::var_os("TJ_DEBUG").is_some() {
        let out = bed.nft(&["list", "ruleset"]).unwrap();
        println!("{}", String::from_utf8_lossy(&out.stdout));
    }
    assert_matrix("br_netfilter off: bridge layer enforcing", &outcomes);

    // It is the bridge layer that dropped them: the IP forward chain never
    // saw a bridged frame.
    let status = trafficjam(&bed, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["br_netfilter"], false, "{status}");
    let inst = &v["instances"][0];
    let layers: Vec<&str> = inst["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(layers.contains(&"bridge forward (flow sets)"), "{status}");
    assert_eq!(inst["tracking"], "flow-sets", "{status}");
    let drops = |chain: &str| {
        inst["drops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["chain"] == chain)
            .map(|d| d["packets"].as_u64().unwrap())
            .unwrap()
    };
    assert!(drops("bridge forward") > 0, "{status}");
    assert_eq!(drops("inet forward"), 0, "{status}");
    // By kind: backend to backend, and backend to proxy (not a reply).
    let kind = |k: &str| {
        inst["drops_by_kind"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["chain"] == k)
            .map(|d| d["packets"].as_u64().unwrap())
            .unwrap_or(0)
    };
    assert!(kind("lateral") > 0, "{status}");
    assert!(kind("to-proxy") > 0, "{status}");
    let text = trafficjam(&bed, &["status"]);
    assert!(text.contains("br_netfilter: off"), "{text}");

    // Positive control: after clear every flow works.
    trafficjam(&bed, &["clear"]);
    let outcomes = matrix::run(&flows(false), |l| bed.ns(l), timeout);
    assert_matrix("br_netfilter off, after clear", &outcomes);
}
