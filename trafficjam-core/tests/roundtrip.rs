//! Encode → decode round trips: what trafficjam sends, read back through
//! the dump decoder, is the table it started from.

use trafficjam_core::model::Table;
use trafficjam_core::wire::{encode, plan, Batch, Change, TableDump};
use trafficjam_core::{InstanceId, Policy};

fn policy(whitelist: &[&str], allow_host: bool) -> Policy {
    Policy::new(
        InstanceId::new("rt").unwrap(),
        [
            "10.77.1.0/24".parse().unwrap(),
            "192.168.0.0/16".parse().unwrap(),
            "fd77:1::/64".parse().unwrap(),
        ],
        whitelist.iter().map(|w| w.parse().unwrap()),
        allow_host,
    )
    .unwrap()
}

/// Split a batch into its netlink messages (header length at offset 0).
fn messages(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
        let aligned = (len + 3) & !3;
        out.push(&rest[..len]);
        rest = &rest[aligned.min(rest.len())..];
    }
    out
}

fn decode_batch(bytes: &[u8], table: &Table) -> Option<Table> {
    let mut dump = TableDump::new(table.family, &table.name);
    for m in messages(bytes) {
        dump.add_message(m).unwrap();
    }
    dump.finish().unwrap()
}

#[test]
fn created_table_decodes_to_itself() {
    for allow_host in [false, true] {
        let p = policy(&["10.77.1.10", "fd77:1::10", "192.168.3.4"], allow_host);
        let table = &p.ruleset().tables[0];
        let mut batch = Batch::new(100);
        encode::create_table(&mut batch, table);
        let tx = batch.finish();
        assert_eq!(decode_batch(tx.bytes(), table).as_ref(), Some(table));
    }
}

#[test]
fn dump_of_another_table_is_none() {
    let p = policy(&["10.77.1.10"], false);
    let mut other = p.ruleset().tables[0].clone();
    other.name = "someone-else".into();
    let mut batch = Batch::new(1);
    encode::create_table(&mut batch, &other);
    let tx = batch.finish();
    assert_eq!(decode_batch(tx.bytes(), &p.ruleset().tables[0]), None);
}

#[test]
fn same_policy_plans_no_change() {
    let p = policy(&["10.77.1.10"], false);
    let t = &p.ruleset().tables[0];
    let mut batch = Batch::new(1);
    assert_eq!(plan(&mut batch, t, Some(t)), Change::Unchanged);
    assert!(batch.is_empty());
}

#[test]
fn whitelist_change_is_an_element_update() {
    let old = policy(&["10.77.1.10", "10.77.1.11"], false);
    let new = policy(&["10.77.1.10", "10.77.1.12", "fd77:1::10"], false);
    let mut batch = Batch::new(1);
    let change = plan(
        &mut batch,
        &new.ruleset().tables[0],
        Some(&old.ruleset().tables[0]),
    );
    assert_eq!(
        change,
        Change::Elements {
            added: 2,
            removed: 1
        }
    );
    // One delete (whitelist4), one add each for whitelist4 and whitelist6.
    assert_eq!(batch.len(), 3);
}

#[test]
fn structural_change_replaces_the_table_atomically() {
    let old = policy(&["10.77.1.10"], false);
    let new = policy(&["10.77.1.10"], true);
    let mut batch = Batch::new(1);
    let change = plan(
        &mut batch,
        &new.ruleset().tables[0],
        Some(&old.ruleset().tables[0]),
    );
    assert_eq!(change, Change::Replace);
    let tx = batch.finish();
    let objects: Vec<String> = tx.entries().iter().map(|e| e.object.to_string()).collect();
    // ensure-exists, delete, then the full table.
    assert_eq!(objects[0], "table inet trafficjam-rt");
    assert_eq!(objects[1], "table inet trafficjam-rt");
    assert_eq!(objects[2], "table inet trafficjam-rt");
}

#[test]
fn large_whitelist_stays_a_handful_of_rules() {
    let whitelist: Vec<String> = (0..10_000u32)
        .map(|i| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string())
        .collect();
    let p = Policy::new(
        InstanceId::default(),
        ["10.0.0.0/8".parse().unwrap()],
        whitelist.iter().map(|w| w.parse().unwrap()),
        false,
    )
    .unwrap();
    let t = &p.ruleset().tables[0];
    let rules = |t: &Table| t.chains.iter().map(|c| c.rules.len()).sum::<usize>();
    let one = Policy::new(
        InstanceId::default(),
        ["10.0.0.0/8".parse().unwrap()],
        ["10.0.0.1".parse().unwrap()],
        false,
    )
    .unwrap();
    assert_eq!(
        rules(t),
        rules(&one.ruleset().tables[0]),
        "rules grew with the whitelist"
    );
    assert_eq!(t.set("whitelist4").unwrap().elements.len(), 10_000);
    let mut batch = Batch::new(1);
    encode::create_table(&mut batch, t);
    let tx = batch.finish();
    assert_eq!(decode_batch(tx.bytes(), t).as_ref(), Some(t));
}

/// A policy over a bridge with `n` backends and one proxy.
fn ports_policy(n: u16) -> Policy {
    use trafficjam_core::{Port, Role};
    let port = |i: u16, role| Port {
        name: format!("veth{i:05}"),
        role,
        mac: [0x02, 0x42, 0x0a, 0x4d, (i >> 8) as u8, i as u8],
        addrs: vec![
            format!("10.77.{}.{}", i >> 8, i & 0xff).parse().unwrap(),
            format!("fd77:1::{i:x}").parse().unwrap(),
        ],
    };
    let mut ports = vec![port(0xffff, Role::Proxy)];
    ports.extend((1..=n).map(|i| port(i, Role::Backend)));
    Policy::new(
        InstanceId::new("rt").unwrap(),
        [
            "10.77.0.0/16".parse().unwrap(),
            "fd77:1::/64".parse().unwrap(),
        ],
        [],
        false,
    )
    .unwrap()
    .with_bridges(["br-rt".to_string()])
    .unwrap()
    .with_ports(ports)
    .unwrap()
}

fn bridge_table(p: &Policy) -> Table {
    p.ruleset()
        .tables
        .into_iter()
        .find(|t| t.family == trafficjam_core::model::Family::Bridge)
        .unwrap()
}

#[test]
fn port_tables_decode_to_themselves() {
    for table in ports_policy(3).ruleset().tables {
        let mut batch = Batch::new(7);
        encode::create_table(&mut batch, &table);
        assert_eq!(
            decode_batch(batch.finish().bytes(), &table).as_ref(),
            Some(&table)
        );
    }
}

#[test]
fn a_container_starting_is_one_set_update() {
    let before = bridge_table(&ports_policy(10));
    let after = bridge_table(&ports_policy(11));
    let mut batch = Batch::new(1);
    let change = plan(&mut batch, &after, Some(&before));
    // Its name, MAC, IPv4, and IPv6 and link-local address (as sources, as
    // neighbour-discovery targets, and with the MAC for the one-lookup
    // check), and its role: 11 elements in 8 sets, one message each, in
    // one transaction.
    assert_eq!(
        change,
        Change::Elements {
            added: 11,
            removed: 0
        }
    );
    assert_eq!(batch.len(), 8);
}

#[test]
fn a_thousand_ports_are_the_same_rules_as_three() {
    let rules = |t: &Table| t.chains.iter().map(|c| c.rules.len()).sum::<usize>();
    let (small, big) = (
        bridge_table(&ports_policy(3)),
        bridge_table(&ports_policy(1000)),
    );
    assert_eq!(rules(&small), rules(&big));
    assert_eq!(big.set("ports").unwrap().elements.len(), 1001);
    assert_eq!(big.set("addrs6").unwrap().elements.len(), 2002);
}

#[test]
fn flows_in_dynamic_sets_are_not_the_configuration() {
    // The kernel's copy of a dynamic set may hold any number of flows; a
    // dump never reads them, and they never make the table look changed.
    let table = bridge_table(&ports_policy(2));
    let mut batch = Batch::new(1);
    encode::create_table(&mut batch, &table);
    let mut dump = TableDump::new(table.family, &table.name);
    for m in messages(batch.finish().bytes()) {
        dump.add_message(m).unwrap();
    }
    let names = dump.set_names();
    assert!(names.contains(&"macs".to_string()));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("tcp") || n.starts_with("ping")));
}
