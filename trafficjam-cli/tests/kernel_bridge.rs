//! Without br_netfilter (bridged frames never reach the IP hooks), the
//! bridge-family layer alone keeps backends apart, and it is stateful on
//! every kernel: where there is no nf_conntrack_bridge (this one) the flows
//! the proxy opens are remembered in dynamic sets, so a backend reaches the
//! proxy only with replies — no UDP, no TCP, no ping of its own.

use std::time::Duration;

use trafficjam_core::timeouts::CLOSING_SECS;
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

/// The test bed with bridged frames kept from the IP hooks.
fn bed_without_br_netfilter() -> Testbed {
    let bed = Testbed::build().expect("build the test bed");
    for key in [
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
    ] {
        bed.host.sysctl(key, "0").unwrap();
    }
    bed
}

#[test]
fn bridge_layer_keeps_backends_apart_without_br_netfilter() {
    let bed = bed_without_br_netfilter();
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

/// The entry a proxy's connection leaves in the flow set follows the
/// connection: two minutes from the SYN, a day once data was pushed, half a
/// minute once it closed (so a closed connection does not hold an entry for
/// a day although a bare ACK follows the last FIN).
#[test]
fn flow_entries_follow_the_connection() {
    use std::io::{Read, Write};
    let bed = bed_without_br_netfilter();
    let _listeners = bed.listen().expect("listeners");
    trafficjam(&bed, &[&["apply"][..], &POLICY_ARGS].concat());
    // Seconds left on the entry of the proxy's connection from `port`.
    let expires = |port: u16| -> Option<u64> {
        let out = bed
            .nft(&["list", "table", "bridge", "trafficjam-default"])
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let set = text
            .split("set tcp4 {")
            .nth(1)?
            .split("set ")
            .next()?
            .to_string();
        let at = set.find(&format!(". {port} . 8082 "))?;
        let rest = &set[at..];
        let e = rest.find("expires ")? + "expires ".len();
        Some(nft_duration(&rest[e..]))
    };
    let proxy = bed.ns("proxy");
    let (tx, rx) = std::sync::mpsc::channel::<u16>();
    let (close_tx, close_rx) = std::sync::mpsc::channel::<()>();
    let _client = proxy
        .run(move || {
            let mut s = std::net::TcpStream::connect_timeout(
                &(ip(addr::B1_4), 8082).into(),
                Duration::from_secs(2),
            )
            .expect("the proxy reaches the backend's echo port");
            std::thread::spawn(move || {
                let port = s.local_addr().unwrap().port();
                s.write_all(b"trafficjam").unwrap();
                let mut buf = [0u8; 10];
                s.read_exact(&mut buf)
                    .expect("the echo comes back: replies pass");
                tx.send(port).unwrap();
                close_rx.recv().unwrap();
                drop(s);
            })
        })
        .unwrap();
    let port = rx.recv_timeout(Duration::from_secs(5)).expect("echoed");
    let open = expires(port).expect("an entry for the open connection");
    assert!(
        open > 3600,
        "an open connection that carried data: {open} s left"
    );
    close_tx.send(()).unwrap();
    let mut left = open;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        left = expires(port).unwrap_or(0);
        if left <= CLOSING_SECS {
            break;
        }
    }
    assert!(
        left <= CLOSING_SECS && left + 5 > CLOSING_SECS,
        "a closed connection is kept for {left} s"
    );
    println!("flow entry: {open} s left while open, {left} s once closed");
    trafficjam(&bed, &["clear"]);
}

/// `1d`, `23h59m58s`, `1m59s`, `999ms` as nft prints them, in whole seconds.
fn nft_duration(text: &str) -> u64 {
    let word = text.split([' ', ',', '\n', '}']).next().unwrap_or("");
    let (mut total, mut num) = (0u64, String::new());
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().unwrap_or(0);
        num.clear();
        total += match c {
            'd' => n * 86_400,
            'h' => n * 3_600,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0
            }
            'm' => n * 60,
            's' => n,
            _ => 0,
        };
    }
    total
}

/// A datagram from `from` (bound to `src`) to `dst`: does it arrive at a
/// socket bound to `dst` in `at` within 500 ms?
fn udp_arrives(
    from: &trafficjam_testbed::Netns,
    src: std::net::SocketAddr,
    at: &trafficjam_testbed::Netns,
    dst: std::net::SocketAddr,
) -> bool {
    use std::net::UdpSocket;
    let receiver = at
        .run(move || {
            let s = UdpSocket::bind(dst).expect("bind the receiving socket");
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            s
        })
        .unwrap();
    from.run(move || {
        let s = UdpSocket::bind(src).expect("bind the sending socket");
        s.send_to(b"old flow", dst).expect("send");
    })
    .unwrap();
    let mut buf = [0u8; 16];
    matches!(receiver.recv_from(&mut buf), Ok((8, _)))
}

/// A flow the proxy opened lets its replies back to the proxy's port only:
/// when the proxy is gone and another container holds its address, the
/// backend cannot reach that container over the proxy's old flow (the
/// reply's 5-tuple, sent to the new owner's MAC), while the same reply
/// reached the proxy while it was there.
#[test]
fn a_departed_proxys_flows_do_not_reach_the_next_owner_of_its_address() {
    use std::net::SocketAddr;
    let bed = bed_without_br_netfilter();
    let proxy_end: SocketAddr = (ip(addr::PROXY4), 40_000).into();
    let backend_end: SocketAddr = (ip(addr::B1_4), 9_999).into();
    let mac_of = |ns: &trafficjam_testbed::Netns| -> String {
        let out = ns.ip(&["-br", "link", "show", "eth0"]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split_whitespace().nth(2).expect("a MAC").to_string()
    };
    // Positive control, no trafficjam: the backend reaches whoever holds
    // the address (backend2, given it, with the backend's neighbour entry
    // pointing there, as a raw-socket attacker can make it).
    let b2 = bed.ns("backend2");
    let b1 = bed.ns("backend1");
    let proxy = bed.ns("proxy");
    // `ip addr add|del` of the proxy's address in `ns`.
    let proxy_address = |ns: &trafficjam_testbed::Netns, how: &str| {
        ns.ip(&["addr", how, &format!("{}/24", addr::PROXY4), "dev", "eth0"])
            .unwrap();
    };
    proxy_address(b2, "add");
    let b2_mac = mac_of(b2);
    // backend1's neighbour entry for the proxy's address, at backend2.
    let point_at_b2 = || {
        b1.ip(&[
            "neigh",
            "replace",
            addr::PROXY4,
            "lladdr",
            &b2_mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
        .unwrap();
    };
    point_at_b2();
    assert!(
        udp_arrives(b1, backend_end, b2, proxy_end),
        "control: without trafficjam the datagram reaches the address's holder"
    );
    proxy_address(b2, "del");
    b1.ip(&["neigh", "del", addr::PROXY4, "dev", "eth0"])
        .unwrap();

    // With trafficjam: the proxy opens the flow; the reply reaches it.
    trafficjam(&bed, &[&["apply"][..], &POLICY_ARGS].concat());
    assert!(
        udp_arrives(proxy, proxy_end, b1, backend_end),
        "the proxy reaches the backend"
    );
    assert!(
        udp_arrives(b1, backend_end, proxy, proxy_end),
        "control: the backend's reply reaches the proxy that opened the flow"
    );

    // The proxy leaves; backend2 gets its address. Nobody is whitelisted
    // now; the flow entry stays in the set (it times out in minutes).
    proxy_address(proxy, "del");
    proxy_address(b2, "add");
    let rest = [
        "--subnet",
        addr::MANAGED4,
        "--subnet",
        addr::MANAGED6,
        "--whitelist-ip",
        "10.77.1.99",
    ];
    trafficjam(&bed, &[&["apply"][..], &rest].concat());
    point_at_b2();
    assert!(
        !udp_arrives(b1, backend_end, b2, proxy_end),
        "the old flow's reply reached the address's next owner"
    );
    trafficjam(&bed, &["clear"]);
}
