//! Without conntrack for bridged frames the flows the proxy opens are
//! remembered in sets of at most `timeouts::FLOWS` entries. When they are
//! full (a proxy opening connections faster than closed ones are
//! forgotten), a new flow is dropped where it starts and counted as
//! `flows-full`; the flows the sets hold go on. Before, the new flow passed
//! and only its replies were dropped, counted as `to-proxy`, as if a
//! backend had attacked the proxy.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use trafficjam_core::timeouts::FLOWS;
use trafficjam_testbed::{addr, ip, wait_until, Listener, Netns, Testbed, POLICY_ARGS};

const UDP_PORT: u16 = trafficjam_testbed::listener::UDP_PORT;

fn trafficjam(bed: &Testbed, args: &[&str]) -> String {
    bed.trafficjam(env!("CARGO_BIN_EXE_trafficjam"), args)
}

/// Send one datagram from `ns` to backend1's listener, from port `bound`
/// (the same flow again) or a new one; returns the port it came from.
fn datagram(ns: &Netns, bound: Option<u16>) -> u16 {
    let to = SocketAddr::new(ip(addr::B1_4), UDP_PORT);
    ns.run(move || -> std::io::Result<u16> {
        let s = UdpSocket::bind(("0.0.0.0", bound.unwrap_or(0)))?;
        s.send_to(b"tj-flows-full", to)?;
        Ok(s.local_addr()?.port())
    })
    .expect("enter the proxy's namespace")
    .expect("send a datagram")
}

/// Datagrams from the proxy to `count` distinct closed ports of backend1
/// (sockets on several source ports): each a new flow of the UDP set.
fn fill(ns: &Netns, count: usize) {
    let host = ip(addr::B1_4);
    ns.run(move || -> std::io::Result<()> {
        let mut sent = 0;
        while sent < count {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            for port in (1..=u16::MAX).filter(|p| *p != UDP_PORT) {
                if sent == count {
                    break;
                }
                // A full socket buffer only delays: try again.
                while s.send_to(b"x", SocketAddr::new(host, port)).is_err() {
                    std::thread::sleep(Duration::from_micros(50));
                }
                sent += 1;
            }
        }
        Ok(())
    })
    .expect("enter the proxy's namespace")
    .expect("send the datagrams");
}

fn flows_full_drops(bed: &Testbed) -> u64 {
    let status = trafficjam(bed, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    v["instances"][0]["drops_by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["chain"] == "flows-full")
        .map(|d| d["packets"].as_u64().unwrap())
        .unwrap_or(0)
}

fn udp_from_proxy(l: &Listener) -> usize {
    let proxy: IpAddr = ip(addr::PROXY4);
    l.arrivals().udp.iter().filter(|a| **a == proxy).count()
}

#[test]
fn a_new_flow_the_full_sets_cannot_hold_is_dropped_and_counted() {
    let bed = Testbed::build().expect("build the test bed");
    let listener = Listener::start(&bed.backend1).expect("a listener in backend1");
    trafficjam(&bed, &[&["apply"][..], &POLICY_ARGS].concat());
    assert_eq!(flows_full_drops(&bed), 0);

    // Positive control: the proxy's datagram arrives, and its flow is one
    // the set holds from now on.
    let held = datagram(&bed.proxy, None);
    wait_until("the proxy's first datagram", Duration::from_secs(3), || {
        udp_from_proxy(&listener) == 1
    });

    // More new flows than the set holds (it has one already).
    let started = std::time::Instant::now();
    fill(&bed.proxy, FLOWS as usize + 1_000);
    println!(
        "{} datagrams of new flows sent in {:?}",
        FLOWS as usize + 1_000,
        started.elapsed()
    );
    wait_until("the set to fill up", Duration::from_secs(10), || {
        flows_full_drops(&bed) > 0
    });

    // A new flow now: dropped where it starts, never at the listener.
    listener.reset();
    let before = flows_full_drops(&bed);
    for _ in 0..3 {
        datagram(&bed.proxy, None);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(udp_from_proxy(&listener), 0, "a new flow passed a full set");
    assert!(flows_full_drops(&bed) >= before + 3);

    // The flow the set holds goes on.
    datagram(&bed.proxy, Some(held));
    wait_until("the held flow's datagram", Duration::from_secs(3), || {
        udp_from_proxy(&listener) == 1
    });

    // TCP has a set of its own, with room: connections still open.
    let to = SocketAddr::new(ip(addr::B1_4), trafficjam_testbed::listener::TCP_PORT);
    bed.proxy
        .run(move || std::net::TcpStream::connect_timeout(&to, Duration::from_secs(3)))
        .expect("enter the proxy's namespace")
        .expect("the proxy connects to backend1 over TCP");

    // Positive control of the drop: without the rules a new flow arrives.
    trafficjam(&bed, &["clear"]);
    listener.reset();
    datagram(&bed.proxy, None);
    wait_until(
        "a datagram without the rules",
        Duration::from_secs(3),
        || udp_from_proxy(&listener) == 1,
    );
}
