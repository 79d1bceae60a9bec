//! Objects to nf_tables messages, in the attribute order nft uses so the
//! bytes can be compared with what nft sends for the same rule.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{DefaultNla, Emitable, NLA_F_NESTED, NLM_F_APPEND, NLM_F_CREATE};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, DataAttribute, Hook as NlHook, HookNumber, InetHookNumber,
    ListAttribute, NfTablesMessage, RuleAttribute, RuleMessage, SetAttribute, SetDescription,
    SetElementAttribute, SetElementFlags, SetElementList, SetElementMessage, SetFlags, SetMessage,
    TableAttribute, TableFlags, TableMessage,
};

use super::batch::{Batch, ObjectRef};
use super::{expr, udata};
use crate::model::{Chain, Element, Family, Rule, Set, SetData, Table, Verdict};

/// At most this many elements per NEWSETELEM/DELSETELEM message, so one
/// message stays well below the kernel's per-message limits; a batch may
/// hold any number of such messages.
pub const ELEMENTS_PER_MESSAGE: usize = 1024;

/// Push the messages that create `table` and everything in it. The table
/// message succeeds when the table exists; callers that want a fresh table
/// delete it first in the same batch.
pub fn create_table(batch: &mut Batch, table: &Table) {
    // nft's order for a table block: the table, its chains, each set with
    // its elements, then the rules (which may refer to the sets).
    create_table_only(batch, table);
    for chain in &table.chains {
        create_chain(batch, table, chain);
    }
    for set in &table.sets {
        let set_id = batch.new_set_id(table.family, &table.name, &set.name);
        create_set(batch, table, set, set_id);
        if !set.elements.is_empty() {
            add_elements(batch, table, set, &set.elements, Some(set_id));
        }
    }
    for chain in &table.chains {
        for (index, rule) in chain.rules.iter().enumerate() {
            add_rule(batch, table, chain, index, rule);
        }
    }
}

/// Push only the NEWTABLE message for `table` (no sets, no chains). Like
/// nft's `add table`, it carries neither `NLM_F_CREATE` nor `NLM_F_EXCL`:
/// the kernel creates a missing table and leaves an existing one be.
pub fn create_table_only(batch: &mut Batch, table: &Table) {
    batch.push(
        table.family,
        NfTablesMessage::NewTable(table_message(table)),
        0,
        ObjectRef::Table {
            family: table.family,
            name: table.name.clone(),
        },
    );
}

/// Push the message that deletes a table and everything in it.
pub fn delete_table(batch: &mut Batch, family: Family, name: &str) {
    batch.push(
        family,
        NfTablesMessage::DeleteTable(TableMessage {
            attributes: vec![TableAttribute::Name(name.to_string())],
        }),
        0,
        ObjectRef::Table {
            family,
            name: name.to_string(),
        },
    );
}

/// Push messages adding `elements` to `set` of `table`. `set_id` names a
/// set created earlier in the same batch.
pub fn add_elements(
    batch: &mut Batch,
    table: &Table,
    set: &Set,
    elements: &[Element],
    set_id: Option<u32>,
) {
    push_elements(batch, table, set, elements, set_id, true);
}

/// Push messages removing `elements` from `set` of `table`.
pub fn delete_elements(batch: &mut Batch, table: &Table, set: &Set, elements: &[Element]) {
    push_elements(batch, table, set, elements, None, false);
}

fn push_elements(
    batch: &mut Batch,
    table: &Table,
    set: &Set,
    elements: &[Element],
    set_id: Option<u32>,
    add: bool,
) {
    let keys: Vec<(Vec<u8>, Tail)> = if set.interval {
        let nets: Vec<IpNet> = elements.iter().filter_map(Element::net).collect();
        interval_keys(&nets)
            .into_iter()
            .map(|(k, end)| (k, if end { Tail::IntervalEnd } else { Tail::None }))
            .collect()
    } else {
        // An element that does not fit the key was never built by
        // trafficjam's compiler; it is left out rather than sent garbled.
        // (Likewise a map's element without its verdict.)
        elements
            .iter()
            .filter_map(|e| {
                // A map's element is removed by its key alone, as nft does.
                let tail = match (set.data, e.verdict()) {
                    (None, None) => Tail::None,
                    (Some(SetData::Verdict), Some(_)) if !add => Tail::None,
                    (Some(SetData::Verdict), Some(v)) => Tail::Verdict(v.verdict()),
                    _ => return None,
                };
                Some((e.to_key(&set.key)?, tail))
            })
            .collect()
    };
    for chunk in keys.chunks(ELEMENTS_PER_MESSAGE) {
        let mut attributes = vec![
            SetElementList::Table(table.name.clone()),
            SetElementList::Set(set.name.clone()),
        ];
        if let Some(id) = set_id {
            attributes.push(SetElementList::SetId(id));
        }
        attributes.push(SetElementList::Elements(
            chunk
                .iter()
                .enumerate()
                .map(|(i, (key, tail))| element(i, key, tail))
                .collect(),
        ));
        let message = SetElementMessage { attributes };
        let object = ObjectRef::SetElements {
            family: table.family,
            table: table.name.clone(),
            set: set.name.clone(),
            count: chunk.len(),
        };
        if add {
            batch.push(
                table.family,
                NfTablesMessage::NewSetElement(message),
                NLM_F_CREATE,
                object,
            );
        } else {
            batch.push(
                table.family,
                NfTablesMessage::DeleteSetElement(message),
                0,
                object,
            );
        }
    }
}

/// What an element carries after its key.
enum Tail {
    None,
    /// The end of an interval (`NFT_SET_ELEM_INTERVAL_END`).
    IntervalEnd,
    /// A verdict map's verdict.
    Verdict(Verdict),
}

/// The `index`-th element of an element list. libnftnl gives each nested
/// element the attribute type `index + 1` rather than `NFTA_LIST_ELEM`; the
/// kernel reads any type, and doing the same keeps the bytes equal to nft's.
fn element(index: usize, key: &[u8], tail: &Tail) -> ListAttribute<SetElementAttribute> {
    let mut attrs = Vec::with_capacity(2);
    if let Tail::IntervalEnd = tail {
        attrs.push(SetElementAttribute::Flags(SetElementFlags::IntervalEnd));
    }
    attrs.push(SetElementAttribute::Key(DataAttribute::Value(key.to_vec())));
    if let Tail::Verdict(v) = tail {
        attrs.push(SetElementAttribute::Data(DataAttribute::Verdict(
            expr::verdict_attrs(v),
        )));
    }
    let mut value = vec![0; attrs.as_slice().buffer_len()];
    attrs.as_slice().emit(&mut value);
    let kind = u16::try_from(index + 1).unwrap_or(u16::MAX) | NLA_F_NESTED;
    ListAttribute::Other(DefaultNla::new(kind, value))
}

/// The keys the kernel's interval sets expect for a list of prefixes: each
/// prefix is a start key and an end key one past its last address, flagged
/// `NFT_SET_ELEM_INTERVAL_END`. Like nft, the range below the first prefix
/// is closed with an end element at the zero address, and no end element
/// is sent for a prefix that reaches the top of the address space.
fn interval_keys(prefixes: &[IpNet]) -> Vec<(Vec<u8>, bool)> {
    let mut keys = Vec::with_capacity(prefixes.len() * 2 + 1);
    let mut sorted = prefixes.to_vec();
    sorted.sort();
    if let Some(first) = sorted.first() {
        let zero = zero_like(first.network());
        if first.network() != zero {
            keys.push((addr_bytes(zero), true));
        }
    }
    for p in &sorted {
        keys.push((addr_bytes(p.network()), false));
        if let Some(end) = next_addr(p.broadcast()) {
            keys.push((addr_bytes(end), true));
        }
    }
    keys
}

fn zero_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(0.into()),
        IpAddr::V6(_) => IpAddr::V6(0u128.into()),
    }
}

/// The address after `ip`, or `None` at the top of the address space.
pub(crate) fn next_addr(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(v6) => u128::from(v6).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

pub(crate) fn addr_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn table_message(table: &Table) -> TableMessage {
    let mut attributes = vec![
        TableAttribute::Name(table.name.clone()),
        TableAttribute::Flags(TableFlags::empty()),
    ];
    if let Some(comment) = &table.comment {
        attributes.push(TableAttribute::UserData(udata::table_comment(comment)));
    }
    TableMessage { attributes }
}

/// Push the NEWSET message for `set` of `table`; `id` is its transaction-local id.
pub fn create_set(batch: &mut Batch, table: &Table, set: &Set, id: u32) {
    let mut flags = SetFlags::empty();
    if set.interval {
        flags |= SetFlags::Interval;
    }
    if set.dynamic.is_some() {
        // nft's `flags dynamic,timeout`.
        flags |= SetFlags::Timeout | SetFlags::Eval;
    }
    if set.data.is_some() {
        flags |= SetFlags::Map;
    }
    let mut attributes = vec![
        SetAttribute::Table(table.name.clone()),
        SetAttribute::Name(set.name.clone()),
        SetAttribute::Flags(flags),
        SetAttribute::KeyType(set.key.datatype()),
        SetAttribute::KeyLen(u32::try_from(set.key.len()).unwrap_or(u32::MAX)),
    ];
    if let Some(data) = set.data {
        // A verdict's length is not the data's: nft sends 0.
        attributes.push(SetAttribute::DataType(data.datatype()));
        attributes.push(SetAttribute::DataLen(0));
    }
    attributes.push(SetAttribute::Id(id));
    if let Some(d) = set.dynamic {
        attributes.push(SetAttribute::Description(vec![SetDescription::Size(
            d.size,
        )]));
    }
    attributes.push(SetAttribute::UserData(udata::set_key(&set.key, set.data)));
    batch.push(
        table.family,
        NfTablesMessage::NewSet(SetMessage { attributes }),
        NLM_F_CREATE,
        ObjectRef::Set {
            family: table.family,
            table: table.name.clone(),
            name: set.name.clone(),
        },
    );
}

/// Push the NEWCHAIN message for `chain` of `table`.
pub fn create_chain(batch: &mut Batch, table: &Table, chain: &Chain) {
    let mut attributes = vec![
        ChainAttribute::Table(table.name.clone()),
        ChainAttribute::Name(chain.name.clone()),
    ];
    if let Some(base) = &chain.base {
        let policy = match base.policy {
            Verdict::Drop => 0,
            _ => 1,
        };
        attributes.push(ChainAttribute::Type("filter".to_string()));
        attributes.push(ChainAttribute::Policy(policy));
        attributes.push(ChainAttribute::Hook(vec![
            NlHook::Number(HookNumber::Inet(InetHookNumber::from(base.hook.number()))),
            // The kernel reads the priority as a signed 32-bit number.
            NlHook::Priority(base.priority as u32),
        ]));
    }
    batch.push(
        table.family,
        NfTablesMessage::NewChain(ChainMessage { attributes }),
        NLM_F_CREATE,
        ObjectRef::Chain {
            family: table.family,
            table: table.name.clone(),
            name: chain.name.clone(),
        },
    );
}

/// Push the NEWRULE message appending `rule` (the `index`-th) to `chain`.
/// A lookup names its set by name and, when the set was created earlier in
/// the same batch, also by its id.
pub fn add_rule(batch: &mut Batch, table: &Table, chain: &Chain, index: usize, rule: &Rule) {
    let set_id = |name: &str| batch.set_id(table.family, &table.name, name);
    let mut attributes = vec![
        RuleAttribute::Table(table.name.clone()),
        RuleAttribute::Chain(chain.name.clone()),
        RuleAttribute::Expressions(rule.exprs.iter().map(|e| expr::encode(e, set_id)).collect()),
    ];
    if let Some(c) = &rule.comment {
        attributes.push(RuleAttribute::UserData(udata::rule_comment(c)));
    }
    batch.push(
        table.family,
        NfTablesMessage::NewRule(RuleMessage { attributes }),
        NLM_F_CREATE | NLM_F_APPEND,
        ObjectRef::Rule {
            family: table.family,
            table: table.name.clone(),
            chain: chain.name.clone(),
            index,
        },
    );
}
