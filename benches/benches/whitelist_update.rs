//! In-process whitelist update on an open socket: the median time from
//! "the whitelist changed" to "the kernel acknowledged the transaction",
//! for whitelists of 10, 1,000 and 10,000 addresses. One address is swapped
//! per update, so the work should not grow with the size of the whitelist.
//!
//! Needs root; runs in a network namespace of its own.
//! `cargo bench -p trafficjam-benches --bench whitelist_update`

use std::net::{IpAddr, Ipv4Addr};

use trafficjam_benches::{median, time_runs, us};
use trafficjam_core::model::{Element, Value};
use trafficjam_core::wire::{encode, plan, Batch, Change};
use trafficjam_core::{names, InstanceId, Policy};
use trafficjam_netlink::NetfilterSocket;
use trafficjam_testbed::Netns;

fn policy(size: u32, extra: u32) -> Policy {
    let whitelist = (0..size)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
        .chain([IpAddr::V4(Ipv4Addr::from(0x0aff_0000 + extra))]);
    Policy::new(
        InstanceId::new("bench").expect("valid id"),
        ["10.0.0.0/8".parse().expect("valid subnet")],
        whitelist,
        false,
    )
    .expect("valid policy")
}

fn main() {
    let ns = Netns::new("tjbench").expect("create a network namespace (run as root)");
    let mut socket = NetfilterSocket::open_in(Some(&ns.path())).expect("open netlink socket");
    println!("whitelist size | delta update: median  p90 | diff+update: median  p90");
    for size in [10u32, 1_000, 10_000] {
        const RUNS: u32 = 200;
        let tables: Vec<_> = (0..=RUNS + 5)
            .map(|i| policy(size, i).ruleset().tables.remove(0))
            .collect();
        let mut batch = Batch::new(socket.next_seq(1 << 16));
        plan(&mut batch, &tables[0], None);
        socket.send(&batch.finish()).expect("install");

        // 1. What a daemon sends when it knows what changed: one address
        //    out, one in, encoded and acknowledged.
        let set = tables[0]
            .set(names::WHITELIST4)
            .expect("whitelist set")
            .clone();
        let mut i = 0usize;
        let mut delta = time_runs(5, RUNS as usize, || {
            let gone = [Element::one(Value::Net(addr_net(size, i as u32)))];
            let new = [Element::one(Value::Net(addr_net(size, i as u32 + 1)))];
            let mut batch = Batch::new(socket.next_seq(1 << 16));
            encode::delete_elements(&mut batch, &tables[0], &set, &gone);
            encode::add_elements(&mut batch, &tables[0], &set, &new, None);
            socket.send(&batch.finish()).expect("update");
            i += 1;
        });
        // Put the kernel back to a known table for the diffing run.
        let mut batch = Batch::new(socket.next_seq(1 << 16));
        encode::delete_table(&mut batch, tables[0].family, &tables[0].name);
        encode::create_table(&mut batch, &tables[0]);
        socket.send(&batch.finish()).expect("reset");

        // 2. The generic path: diff the whole desired table against the
        //    known current one, then send.
        let mut k = 0usize;
        let mut diffed = time_runs(5, RUNS as usize, || {
            let mut batch = Batch::new(socket.next_seq(1 << 16));
            let change = plan(&mut batch, &tables[k + 1], Some(&tables[k]));
            assert_eq!(
                change,
                Change::Elements {
                    added: 1,
                    removed: 1
                }
            );
            socket.send(&batch.finish()).expect("update");
            k += 1;
        });
        let (dm, dp) = (median(&mut delta), delta[delta.len() * 9 / 10]);
        let (fm, fp) = (median(&mut diffed), diffed[diffed.len() * 9 / 10]);
        println!(
            "{size:>14} | {:>10.1} µs {:>6.1} µs | {:>10.1} µs {:>6.1} µs",
            us(dm),
            us(dp),
            us(fm),
            us(fp)
        );
    }
}

/// The extra whitelisted address of [`policy`] number `i`, as a host prefix.
fn addr_net(_size: u32, i: u32) -> ipnet::IpNet {
    IpAddr::V4(Ipv4Addr::from(0x0aff_0000 + i)).into()
}
