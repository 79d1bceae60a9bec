//! A whitelisted address that leaves the whitelist loses the connections it
//! had opened into the network: its conntrack entries are removed, so
//! neither it nor whoever gets the address next can keep using them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use trafficjam_testbed::listener::ECHO_PORT;
use trafficjam_testbed::{addr, ip, Netns, Testbed};

fn apply(bed: &Testbed, whitelist: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trafficjam"));
    cmd.arg("apply").arg("--netns").arg(bed.host.path());
    cmd.args(["--subnet", addr::MANAGED4, "--subnet", addr::MANAGED6]);
    for w in whitelist {
        cmd.args(["--whitelist-ip", w]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Open a connection from inside `ns` and prove it works.
fn open(ns: &Netns, to: &str) -> TcpStream {
    let to = SocketAddr::new(ip(to), ECHO_PORT);
    let mut s = ns
        .run(move || TcpStream::connect_timeout(&to, Duration::from_secs(2)))
        .unwrap()
        .expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    assert!(echoes(&mut s), "fresh connection does not echo");
    s
}

fn echoes(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4];
    s.write_all(b"ping").is_ok() && matches!(s.read(&mut buf), Ok(4))
}

#[test]
fn connections_of_a_removed_address_are_cut() {
    let bed = Testbed::build().expect("build the test bed");
    let _listeners = bed.listen().expect("listeners");
    apply(&bed, &[addr::PROXY4, addr::PROXY6, addr::B1_4]);
    let mut from_proxy4 = open(&bed.proxy, addr::B2_4);
    let mut from_proxy6 = open(&bed.proxy, addr::B2_6);
    let mut from_b1 = open(&bed.backend1, addr::B2_4);
    // The proxy stays whitelisted only on IPv6; backend1 not at all.
    apply(&bed, &[addr::PROXY6]);
    assert!(
        !echoes(&mut from_proxy4),
        "the removed address kept its connection"
    );
    assert!(
        !echoes(&mut from_b1),
        "the removed address kept its connection"
    );
    assert!(
        echoes(&mut from_proxy6),
        "a still-whitelisted address lost its connection"
    );
}
