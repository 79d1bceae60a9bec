//! Spoofing: a backend with CAP_NET_RAW forges the proxy's source address
//! (and, separately, its MAC address too) and writes frames straight onto
//! its link. Every port is bound to its own MAC and addresses, so nothing
//! reaches the other backend; the positive control proves the forged
//! frames do arrive without trafficjam.

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use trafficjam_testbed::frame::{mac_of, send_frame, udp_frame};
use trafficjam_testbed::listener::UDP_PORT;
use trafficjam_testbed::{addr, ip, Listeners, Testbed, POLICY_ARGS};

fn apply(bed: &Testbed, extra: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_trafficjam"))
        .arg("apply")
        .arg("--netns")
        .arg(bed.host.path())
        .args(POLICY_ARGS)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Forge UDP datagrams "from the proxy" at backend1 to backend2, IPv4 and
/// IPv6, with backend1's own MAC and with the proxy's MAC; return which
/// forged sources backend2 saw.
fn forge(bed: &Testbed, listeners: &Listeners) -> Vec<(String, IpAddr)> {
    let b1_mac = mac_of(&bed.backend1, "eth0").unwrap();
    let proxy_mac = mac_of(&bed.proxy, "eth0").unwrap();
    let b2_mac = mac_of(&bed.backend2, "eth0").unwrap();
    let mut got = Vec::new();
    for (what, src_mac) in [("forged IP", b1_mac), ("forged IP and MAC", proxy_mac)] {
        listeners.reset();
        for (src, dst) in [(addr::PROXY4, addr::B2_4), (addr::PROXY6, addr::B2_6)] {
            for _ in 0..3 {
                let f = udp_frame(src_mac, b2_mac, ip(src), ip(dst), UDP_PORT, b"spoof");
                send_frame(&bed.backend1, "eth0", f).expect("send a forged frame");
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        for from in listeners.arrivals("backend2").udp {
            got.push((what.to_string(), from));
        }
    }
    got
}

#[test]
fn forged_proxy_addresses_do_not_reach_other_backends() {
    let bed = Testbed::build().expect("build the test bed");
    let listeners = bed.listen().expect("listeners");
    let proxies = [ip(addr::PROXY4), ip(addr::PROXY6)];

    // Positive control: with no rules the forged frames arrive, both
    // families, both kinds of forgery (so the test can see a failure).
    let got = forge(&bed, &listeners);
    for kind in ["forged IP", "forged IP and MAC"] {
        for p in proxies {
            assert!(
                got.contains(&(kind.to_string(), p)),
                "{kind} from {p} did not arrive without rules: {got:?}"
            );
        }
    }

    // Every port bound to what the kernel says its container is: nothing.
    apply(&bed, &[]);
    let got = forge(&bed, &listeners);
    assert!(got.is_empty(), "forged frames reached backend2: {got:?}");

    // The real proxy still reaches backend2 over both families.
    for to in [addr::B2_4, addr::B2_6] {
        assert!(trafficjam_testbed::probe::udp_roundtrip(
            &bed.proxy,
            ip(to),
            Duration::from_secs(1)
        ));
        assert!(trafficjam_testbed::probe::tcp_connect(
            &bed.proxy,
            ip(to),
            Duration::from_secs(1)
        ));
    }
    let status = Command::new(env!("CARGO_BIN_EXE_trafficjam"))
        .args(["status", "--netns"])
        .arg(bed.host.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    let proxy_mac = mac_of(&bed.proxy, "eth0").unwrap();
    let mac = proxy_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let line = format!("port vproxy          proxy  : sends only as {mac} 10.77.1.10, fd77:1::10");
    assert!(text.contains(&line), "{line} not in\n{text}");
    // Forged IP with the backend's MAC, and forged IP and MAC: both kinds
    // counted (3 datagrams x 2 families each).
    let kind = |k: &str| {
        text.lines()
            .find(|l| l.contains("dropped by kind"))
            .and_then(|l| l.split(&format!("{k} ")).nth(1))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(kind("spoofed-ip") >= 6, "{text}");
    assert!(kind("spoofed-mac") >= 6, "{text}");
}
