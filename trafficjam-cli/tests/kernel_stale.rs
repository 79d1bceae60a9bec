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
    // The proxy and backend1 whitelisted (by the addresses their ports
    // hold); each opens connections to backend2.
    apply(&bed, &[addr::PROXY4, addr::PROXY6, addr::B1_4]);
    let mut from_proxy4 = open(&bed.proxy, addr::B2_4);
    let mut from_proxy6 = open(&bed.proxy, addr::B2_6);
    let mut from_b1_4 = open(&bed.backend1, addr::B2_4);
    let mut from_b1_6 = open(&bed.backend1, addr::B2_6);
    // backend1 leaves the whitelist: its port is a backend's again, and
    // its connections end, both families; the proxy's go on.
    apply(&bed, &[addr::PROXY4, addr::PROXY6]);
    for (what, s) in [("v4", &mut from_b1_4), ("v6", &mut from_b1_6)] {
        assert!(
            !echoes(s),
            "backend1 kept its {what} connection after leaving the whitelist"
        );
    }
    for (what, s) in [("v4", &mut from_proxy4), ("v6", &mut from_proxy6)] {
        assert!(
            echoes(s),
            "the still-whitelisted proxy lost its {what} connection"
        );
    }
}
