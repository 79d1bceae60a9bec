//! The exceptions users declare, in static mode on the test bed: an
//! allowed pair (`--allow FROM->TO:PORTS`), services of the proxy open to
//! every container (`--allow-to-proxy`) and of the host
//! (`--allow-host-port`). Exactly those flows open; every other one stays
//! blocked, both directions, IPv4 and IPv6, with br_netfilter on and off.
//! The positive control of each blocked flow is the matrix after `clear`.

use std::time::Duration;

use trafficjam_testbed::{addr, assert_matrix, ip, matrix, Flow, Proto, Testbed, POLICY_ARGS};

const TIMEOUT: Duration = Duration::from_millis(600);

fn trafficjam(bed: &Testbed, args: &[&str]) -> String {
    bed.trafficjam(env!("CARGO_BIN_EXE_trafficjam"), args)
}

/// (from, to, v4, v6, tcp allowed, udp allowed) with the exceptions on.
fn flows(enforced: bool) -> Vec<Flow> {
    use addr::*;
    let open = |exception: bool| exception || !enforced;
    // The listeners: TCP 8080, UDP 8081. Allowed: backend1 -> backend2 on
    // 8080/tcp; anyone -> the proxy on 8081/udp; anyone -> the host on
    // 8080/tcp.
    let table: [(&str, &str, &str, &str, bool, bool); 7] = [
        (
            "backend1",
            "backend2 (allowed 8080/tcp)",
            B2_4,
            B2_6,
            true,
            false,
        ),
        (
            "backend2",
            "backend1 (not the other way)",
            B1_4,
            B1_6,
            false,
            false,
        ),
        (
            "backend1",
            "proxy (allowed 8081/udp)",
            PROXY4,
            PROXY6,
            false,
            true,
        ),
        (
            "backend2",
            "proxy (allowed 8081/udp)",
            PROXY4,
            PROXY6,
            false,
            true,
        ),
        ("backend1", "host (allowed 8080/tcp)", GW4, GW6, true, false),
        ("proxy", "backend1", B1_4, B1_6, true, true),
        ("proxy", "backend2", B2_4, B2_6, true, true),
    ];
    let mut out = Vec::new();
    for (from, to, v4, v6, tcp, udp) in table {
        for (proto, allowed) in [(Proto::Tcp, tcp), (Proto::Udp, udp)] {
            for a in [v4, v6] {
                out.push(Flow {
                    label: format!("{from} -> {to}"),
                    from,
                    to: ip(a),
                    proto,
                    allowed: open(allowed),
                });
            }
        }
    }
    out
}

fn exceptions_hold(br_netfilter: bool) {
    let bed = Testbed::build().expect("build the test bed");
    let v = if br_netfilter { "1" } else { "0" };
    for key in [
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
    ] {
        bed.host.sysctl(key, v).unwrap();
    }
    let _listeners = bed.listen().expect("listeners");
    let allow4 = format!("{}->{}:8080/tcp", addr::B1_4, addr::B2_4);
    let allow6 = format!("{}->[{}]:8080/tcp", addr::B1_6, addr::B2_6);
    let mut args = vec!["apply"];
    args.extend(POLICY_ARGS);
    args.extend([
        "--allow",
        &allow4,
        "--allow",
        &allow6,
        "--allow-to-proxy",
        "8081/udp",
        "--allow-host-port",
        "8080/tcp",
    ]);
    trafficjam(&bed, &args);
    let what = format!("exceptions, br_netfilter {v}");
    assert_matrix(&what, &matrix::run(&flows(true), |l| bed.ns(l), TIMEOUT));

    // status names them.
    let text = trafficjam(&bed, &["status"]);
    assert!(
        text.contains("allowed:       vb1 → vb2: 8080/tcp"),
        "{text}"
    );
    assert!(
        text.contains("open on the proxy to every container: 8081/udp"),
        "{text}"
    );
    assert!(
        text.contains("open on the host to containers: 8080/tcp"),
        "{text}"
    );
    assert!(!text.contains("WARNING"), "{text}");

    // Without the exceptions, the same flows close again (one transaction).
    let mut plain = vec!["apply"];
    plain.extend(POLICY_ARGS);
    let out = trafficjam(&bed, &plain);
    assert!(out.contains("updated in place"), "{out}");
    let closed: Vec<Flow> = flows(true)
        .into_iter()
        .map(|mut f| {
            f.allowed = f.from == "proxy";
            f
        })
        .collect();
    assert_matrix(
        "exceptions removed",
        &matrix::run(&closed, |l| bed.ns(l), TIMEOUT),
    );

    // Positive control: without trafficjam every flow works.
    trafficjam(&bed, &["clear"]);
    assert_matrix(
        "after clear",
        &matrix::run(&flows(false), |l| bed.ns(l), TIMEOUT),
    );
}

#[test]
fn exceptions_open_exactly_their_flows_with_br_netfilter() {
    exceptions_hold(true);
}

#[test]
fn exceptions_open_exactly_their_flows_without_br_netfilter() {
    exceptions_hold(false);
}

#[test]
fn bad_exceptions_are_refused_before_the_kernel() {
    let bed = Testbed::build().expect("build the test bed");
    for (arg, value, why) in [
        (
            "--allow",
            "10.77.1.99->10.77.1.12",
            "no port of bridge br-m holds",
        ),
        ("--allow", "10.77.1.11", "FROM->TO"),
        ("--allow-to-proxy", "80/sctp", "neither tcp nor udp"),
        ("--allow-host-port", "0", "not a port"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trafficjam"))
            .arg("apply")
            .args(POLICY_ARGS)
            .args([arg, value, "--netns"])
            .arg(bed.host.path())
            .output()
            .unwrap();
        trafficjam_testbed::cli::refused(&out, 2, why);
    }
    let tables = bed.nft(&["list", "tables"]).unwrap();
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("trafficjam"),
        "a refused policy reached the kernel"
    );
}
