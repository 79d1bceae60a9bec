//! The socket against a real kernel, inside namespaces the tests create.

use std::path::Path;

use trafficjam_core::model::Family;
use trafficjam_core::wire::{encode, request, Batch, ObjectRef};
use trafficjam_core::{InstanceId, Policy};
use trafficjam_netlink::{consistent, read_table, NetfilterSocket, NetlinkError};
use trafficjam_testbed::{require_root, Netns};

fn policy(id: &str) -> Policy {
    Policy::new(
        InstanceId::new(id).unwrap(),
        ["10.9.0.0/16".parse().unwrap()],
        ["10.9.0.2".parse().unwrap()],
        false,
    )
    .unwrap()
}

fn socket(ns: &Netns) -> NetfilterSocket {
    NetfilterSocket::open_in(Some(&ns.path())).expect("open socket in namespace")
}

fn tables(ns: &Netns) -> String {
    String::from_utf8_lossy(&ns.exec("nft", &["list", "tables"]).unwrap().stdout).into_owned()
}

fn read(sock: &mut NetfilterSocket, name: &str) -> Option<trafficjam_core::model::Table> {
    read_table(sock, Family::Inet, name).expect("consistent dump")
}

#[test]
fn batch_is_applied_and_dumps_back_identically() {
    require_root();
    let ns = Netns::new("tjnl").unwrap();
    let mut sock = socket(&ns);
    let table = &policy("nl").ruleset().tables[0];
    let mut batch = Batch::new(sock.next_seq(1000));
    encode::create_table(&mut batch, table);
    sock.send(&batch.finish()).expect("batch accepted");
    assert!(tables(&ns).contains("table inet trafficjam-nl"));
    assert_eq!(read(&mut sock, "trafficjam-nl").as_ref(), Some(table));
}

#[test]
fn refused_batch_names_the_object_and_changes_nothing() {
    require_root();
    let ns = Netns::new("tjnl").unwrap();
    let mut sock = socket(&ns);
    let good = &policy("good").ruleset().tables[0];
    let mut bad = policy("bad").ruleset().tables[0].clone();
    // The first rule looking up a set: made to look up one that does not
    // exist, which the kernel refuses.
    let is_lookup =
        |e: &trafficjam_core::model::Expr| matches!(e, trafficjam_core::model::Expr::Lookup { .. });
    let index = bad.chains[0]
        .rules
        .iter()
        .position(|r| r.exprs.iter().any(is_lookup))
        .expect("a rule with a lookup");
    if let Some(trafficjam_core::model::Expr::Lookup { set, .. }) = bad.chains[0].rules[index]
        .exprs
        .iter_mut()
        .find(|e| is_lookup(e))
    {
        *set = "no-such-set".into();
    }
    let mut batch = Batch::new(sock.next_seq(1000));
    encode::create_table(&mut batch, good);
    encode::create_table(&mut batch, &bad);
    let err = sock.send(&batch.finish()).expect_err("kernel must refuse");
    let NetlinkError::Transaction(t) = &err else {
        panic!("not a transaction error: {err}");
    };
    assert_eq!(
        t.failures[0].object,
        ObjectRef::Rule {
            family: Family::Inet,
            table: "trafficjam-bad".into(),
            chain: "forward".into(),
            index
        },
        "{err}"
    );
    assert_eq!(t.failures[0].errno, libc_enoent(), "{err}");
    let named = format!("rule #{} of chain inet trafficjam-bad forward", index + 1);
    assert!(err.to_string().contains(&named), "{err}");
    println!("{err}");
    // All or nothing: the good table of the same batch is not there either.
    assert_eq!(tables(&ns), "");
}

/// `ENOENT`: the set the rule looks up does not exist.
fn libc_enoent() -> i32 {
    2
}

#[test]
fn dump_of_missing_table_is_none_and_missing_set_is_not_found() {
    require_root();
    let ns = Netns::new("tjnl").unwrap();
    let mut sock = socket(&ns);
    assert_eq!(read(&mut sock, "trafficjam-none"), None);
    let err = sock
        .request(&request::dump_set_elements(Family::Inet, "nope", "nope"))
        .expect_err("no such set");
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn missing_namespace_is_named() {
    let err = NetfilterSocket::open_in(Some(Path::new("/run/netns/tj-no-such-ns"))).unwrap_err();
    assert!(matches!(err, NetlinkError::Namespace { .. }));
    assert!(
        err.to_string().contains("/run/netns/tj-no-such-ns"),
        "{err}"
    );
}

#[test]
fn consistent_retries_while_the_generation_moves() {
    require_root();
    let ns = Netns::new("tjnl").unwrap();
    let mut sock = socket(&ns);
    let mut other = socket(&ns);
    let mut runs = 0;
    let value = consistent(
        &mut sock,
        &request::get_generation(),
        request::parse_generation,
        |_| {
            runs += 1;
            if runs < 3 {
                // Someone changes the ruleset during our dump.
                let t = &policy(&format!("g{runs}")).ruleset().tables[0];
                let mut b = Batch::new(other.next_seq(1000));
                encode::create_table(&mut b, t);
                other.send(&b.finish()).unwrap();
            }
            Ok(runs)
        },
    )
    .unwrap();
    assert_eq!(
        value, 3,
        "the dump was not retried after the generation moved"
    );
}

#[test]
fn batch_read_at_an_old_generation_is_refused() {
    require_root();
    let ns = Netns::new("tjnl").unwrap();
    let mut sock = socket(&ns);
    let genid = trafficjam_netlink::generation(&mut sock).unwrap();
    // Someone else changes the ruleset after we read it…
    let mut b = Batch::new(sock.next_seq(1000));
    encode::create_table(&mut b, &policy("other").ruleset().tables[0]);
    sock.send(&b.finish()).unwrap();
    // …so our change, computed from the old state, must not land.
    let mut b = Batch::with_generation(sock.next_seq(1000), genid);
    encode::create_table(&mut b, &policy("ours").ruleset().tables[0]);
    let err = sock
        .send(&b.finish())
        .expect_err("stale generation accepted");
    assert!(err.is_generation_changed(), "{err}");
    assert!(!tables(&ns).contains("trafficjam-ours"));
    // At the current generation it lands.
    let genid = trafficjam_netlink::generation(&mut sock).unwrap();
    let mut b = Batch::with_generation(sock.next_seq(1000), genid);
    encode::create_table(&mut b, &policy("ours").ruleset().tables[0]);
    sock.send(&b.finish()).unwrap();
    assert!(tables(&ns).contains("trafficjam-ours"));
}

/// Which flow tracking the bridge layer gets is found by asking the
/// kernel, and asking leaves nothing behind. This kernel is expected to
/// answer as its build says: conntrack for bridged frames only where
/// nf_conntrack_bridge is built in or loaded once asked for.
#[test]
fn bridge_tracking_is_probed_without_a_trace() {
    require_root();
    let ns = Netns::new("tjtrack").unwrap();
    let before = tables(&ns);
    let mut fw = trafficjam_netlink::Firewall::open_in(Some(&ns.path())).unwrap();
    let found = fw.bridge_tracking();
    assert_eq!(fw.bridge_tracking(), found, "asked once, then remembered");
    assert_eq!(tables(&ns), before, "the probe left a table");
    let has_module = Path::new("/sys/module/nf_conntrack_bridge").exists();
    let expected = if has_module {
        trafficjam_core::Tracking::Conntrack
    } else {
        trafficjam_core::Tracking::FlowSets
    };
    assert_eq!(found, expected, "nf_conntrack_bridge loaded: {has_module}");
}

/// A change is planned against what the last transaction left, without
/// reading the kernel; when anyone else committed in between, the kernel
/// refuses that plan and the tables are read again. Either way the kernel
/// ends up holding exactly what was asked.
#[test]
fn changes_are_planned_against_the_last_transaction_until_someone_else_commits() {
    require_root();
    let ns = Netns::new("tjnl").unwrap();
    let mut fw = trafficjam_netlink::Firewall::open_in(Some(&ns.path())).unwrap();
    let with = |white: &[&str]| {
        Policy::new(
            InstanceId::new("cache").unwrap(),
            ["10.9.0.0/16".parse().unwrap()],
            white.iter().map(|w| w.parse().unwrap()),
            false,
        )
        .unwrap()
        .ruleset()
    };
    let mut sock = socket(&ns);
    let check = |sock: &mut NetfilterSocket, white: &[&str]| {
        assert_eq!(
            read(sock, "trafficjam-cache").as_ref(),
            Some(&with(white).tables[0]),
            "the kernel holds {white:?}"
        );
    };
    fw.apply(with(&["10.9.0.2"])).unwrap();
    assert_eq!(fw.reads(), 1);
    // Our own commits only: planned from memory, and right.
    for (i, white) in [&["10.9.0.2", "10.9.0.3"][..], &["10.9.0.3"], &["10.9.0.4"]]
        .iter()
        .enumerate()
    {
        let changes = fw.apply(with(white)).unwrap();
        assert!(
            matches!(changes[0].1, trafficjam_core::wire::Change::Elements { .. }),
            "{changes:?}"
        );
        assert_eq!(fw.reads(), 1, "change {i} read the kernel");
        check(&mut sock, white);
    }
    // Nothing to do: nothing is read or sent.
    fw.apply(with(&["10.9.0.4"])).unwrap();
    assert_eq!(fw.reads(), 1);
    // Someone else commits (a table of their own): the plan from memory
    // is refused, the kernel read again, the change still made.
    ns.exec("nft", &["add", "table", "inet", "someone-else"])
        .unwrap();
    fw.apply(with(&["10.9.0.5"])).unwrap();
    assert_eq!(fw.reads(), 2);
    check(&mut sock, &["10.9.0.5"]);
    // Someone else changes our table: after `forget`, it is put back.
    ns.exec(
        "nft",
        &[
            "delete",
            "element",
            "inet",
            "trafficjam-cache",
            "whitelist4",
            "{ 10.9.0.5 }",
        ],
    )
    .unwrap();
    fw.forget();
    fw.apply(with(&["10.9.0.5"])).unwrap();
    assert_eq!(fw.reads(), 3);
    check(&mut sock, &["10.9.0.5"]);
    assert!(tables(&ns).contains("table inet someone-else"));
}

/// A policy of ports `veth<i>` (the first a proxy) and quarantined ports
/// `vethq<i>`.
fn ports_policy(ports: &[u8], quarantined: &[u8]) -> Policy {
    use trafficjam_core::{Port, Role};
    let port = |i: u8| Port {
        name: format!("veth{i}"),
        role: if i == 1 { Role::Proxy } else { Role::Backend },
        mac: [0x02, 0x42, 0x0a, 0x09, 0, i],
        addrs: vec![
            format!("10.9.0.{i}").parse().unwrap(),
            format!("fd09::{i}").parse().unwrap(),
        ],
    };
    Policy::new(
        InstanceId::new("upd").unwrap(),
        ["10.9.0.0/16".parse().unwrap(), "fd09::/64".parse().unwrap()],
        [],
        false,
    )
    .unwrap()
    .with_bridges(["br-upd".to_string()])
    .unwrap()
    .with_ports(ports.iter().map(|i| port(*i)))
    .unwrap()
    .with_unidentified(quarantined.iter().map(|i| format!("veth{i}")))
    .unwrap()
}

/// A port update is sent as its elements alone, planned against the last
/// transaction: the kernel then holds what compiling the new policy whole
/// gives. It is declined (nothing sent) when the table was read rather
/// than committed by this socket, when it does not fit, and when someone
/// else committed in between; applying whole then still works.
#[test]
fn port_updates_are_sent_as_elements_and_declined_when_stale() {
    require_root();
    let ns = Netns::new("tjnl").unwrap();
    let mut fw = trafficjam_netlink::Firewall::open_in(Some(&ns.path())).unwrap();
    let mut sock = socket(&ns);
    let bridge = |sock: &mut NetfilterSocket| {
        read_table(sock, Family::Bridge, "trafficjam-upd").expect("consistent dump")
    };
    let compiled = |p: &Policy| p.ruleset().tables[1].clone();
    // A container starts (its veth first quarantined, then bound), then
    // dies (its port quarantined again), then its veth goes.
    let steps = [
        ports_policy(&[1, 2], &[]),
        ports_policy(&[1, 2], &[3]),
        ports_policy(&[1, 2, 3], &[]),
        ports_policy(&[1, 2], &[3]),
        ports_policy(&[1, 2], &[]),
    ];
    fw.apply(steps[0].ruleset()).unwrap();
    assert_eq!(fw.reads(), 1);
    for w in steps.windows(2) {
        let update = w[0].port_update(&w[1]).expect("a port update");
        let changes = fw.update(&update).unwrap().expect("sent");
        let (added, removed) = update.counts();
        assert_eq!(
            changes[0].1,
            trafficjam_core::wire::Change::Elements { added, removed }
        );
        assert_eq!(bridge(&mut sock).as_ref(), Some(&compiled(&w[1])));
    }
    assert_eq!(fw.reads(), 1, "an update read the kernel");
    // Sent again, it no longer fits what the kernel holds: declined.
    let last = steps[3].port_update(&steps[4]).unwrap();
    assert!(fw.update(&last).unwrap().is_none());
    assert_eq!(bridge(&mut sock).as_ref(), Some(&compiled(&steps[4])));
    // Someone else commits: declined (the kernel refused the batch), and
    // the whole ruleset is applied from a fresh read.
    ns.exec("nft", &["add", "table", "inet", "someone-else"])
        .unwrap();
    let next = ports_policy(&[1, 2, 4], &[]);
    let update = steps[4].port_update(&next).unwrap();
    assert!(fw.update(&update).unwrap().is_none());
    assert_eq!(bridge(&mut sock).as_ref(), Some(&compiled(&steps[4])));
    fw.apply(next.ruleset()).unwrap();
    assert_eq!(fw.reads(), 2);
    assert_eq!(bridge(&mut sock).as_ref(), Some(&compiled(&next)));
    // Known from a read (nothing to commit): an update is declined until
    // a commit of this socket made the table what it holds.
    fw.forget();
    fw.apply(next.ruleset()).unwrap();
    assert_eq!(fw.reads(), 3);
    let after = ports_policy(&[1, 2], &[]);
    let update = next.port_update(&after).unwrap();
    assert!(fw.update(&update).unwrap().is_none());
    fw.apply(after.ruleset()).unwrap();
    assert_eq!(bridge(&mut sock).as_ref(), Some(&compiled(&after)));
    assert!(tables(&ns).contains("table inet someone-else"));
}
