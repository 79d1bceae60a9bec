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
    let rules: usize = t.chains.iter().map(|c| c.rules.len()).sum();
    assert!(rules <= 10, "{rules} rules");
    assert_eq!(t.set("whitelist4").unwrap().elements.len(), 10_000);
    let mut batch = Batch::new(1);
    encode::create_table(&mut batch, t);
    let tx = batch.finish();
    assert_eq!(decode_batch(tx.bytes(), t).as_ref(), Some(t));
}
