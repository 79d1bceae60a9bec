//! A whitelisted address that leaves the whitelist loses the connections it
//! had opened into the network: its conntrack entries are removed, so
//! neither it nor whoever gets the address next can keep using them.

use std::process::Command;

use trafficjam_testbed::probe::{echoes, open_echo};
use trafficjam_testbed::{addr, ip, Testbed};

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

#[test]
fn connections_of_a_removed_address_are_cut() {
    let bed = Testbed::build().expect("build the test bed");
    let _listeners = bed.listen().expect("listeners");
    // The proxy and backend1 whitelisted (by the addresses their ports
    // hold); each opens connections to backend2.
    apply(&bed, &[addr::PROXY4, addr::PROXY6, addr::B1_4]);
    let mut from_proxy4 = open_echo(&bed.proxy, ip(addr::B2_4));
    let mut from_proxy6 = open_echo(&bed.proxy, ip(addr::B2_6));
    let mut from_b1_4 = open_echo(&bed.backend1, ip(addr::B2_4));
    let mut from_b1_6 = open_echo(&bed.backend1, ip(addr::B2_6));
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
