//! Kernel dump messages back into the [`Table`] model.
//!
//! A table arrives as several dumps (tables, sets, elements of each set,
//! chains, rules). [`TableDump`] takes the raw messages in any order,
//! keeps only those about the table it was asked for, and assembles the
//! table at the end. Every byte comes from the kernel, so nothing here may
//! panic: malformed input is a [`DecodeError`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::attr::{chain, elem, list, msg, rule, set, table};
use super::nla::{be_u32, be_u64, string, Attrs, Message};
use super::{expr, udata, DecodeError};
use crate::model::{
    BaseChain, Chain, Dynamic, Element, Family, Hook, MapVerdict, Rule, Set, SetData, SetKey,
    Table, Verdict,
};

/// `NFNL_SUBSYS_NFTABLES`
const SUBSYS_NFTABLES: u8 = 10;

/// Collects the messages of a table dump and assembles the [`Table`].
#[derive(Debug, Clone)]
pub struct TableDump {
    family: Family,
    name: String,
    found: bool,
    comment: Option<String>,
    sets: Vec<SetHeader>,
    elements: BTreeMap<String, Vec<ElementBytes>>,
    chains: Vec<(String, Option<BaseChain>)>,
    rules: Vec<(String, u64, Rule)>,
}

#[derive(Debug, Clone)]
struct SetHeader {
    name: String,
    key: SetKey,
    interval: bool,
    dynamic: Option<Dynamic>,
    data: Option<SetData>,
}

/// One element as the kernel sent it: its key, whether it ends an
/// interval, and a map element's verdict.
#[derive(Debug, Clone)]
struct ElementBytes {
    key: Vec<u8>,
    end: bool,
    verdict: Option<Verdict>,
}

/// One nf_tables message from the kernel and its family; `None` for other
/// subsystems and for families trafficjam does not manage.
pub(crate) fn parse(bytes: &[u8]) -> Result<Option<(Family, Message<'_>)>, DecodeError> {
    let m = Message::parse(bytes)?;
    if m.subsys != SUBSYS_NFTABLES {
        return Ok(None);
    }
    Ok(Family::from_nfproto(m.family).map(|f| (f, m)))
}

impl TableDump {
    /// Start collecting the dump of table `name` in `family`.
    pub fn new(family: Family, name: &str) -> TableDump {
        TableDump {
            family,
            name: name.to_string(),
            found: false,
            comment: None,
            sets: Vec::new(),
            elements: BTreeMap::new(),
            chains: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// Feed one raw netlink message of a dump reply. Messages about other
    /// tables or families, and non-nf_tables messages, are ignored.
    pub fn add_message(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let Some((family, m)) = parse(bytes)? else {
            return Ok(());
        };
        if family != self.family {
            return Ok(());
        }
        match m.kind {
            msg::NEWTABLE => self.table(m.attrs),
            msg::NEWSET => self.set(m.attrs),
            msg::NEWSETELEM => self.set_elements(m.attrs),
            msg::NEWCHAIN => self.chain(m.attrs),
            msg::NEWRULE => self.rule(m.attrs),
            _ => Ok(()),
        }
    }

    /// True once the table itself was seen in the dump.
    pub fn has_table(&self) -> bool {
        self.found
    }

    /// The names of the sets seen so far whose elements belong to the
    /// table's configuration: they must be dumped separately
    /// (`NFT_MSG_GETSETELEM` needs a set name). Dynamic sets are left out:
    /// their elements are the packet path's state (possibly many), not
    /// trafficjam's.
    pub fn set_names(&self) -> Vec<String> {
        self.sets
            .iter()
            .filter(|s| s.dynamic.is_none())
            .map(|s| s.name.clone())
            .collect()
    }

    /// The assembled table, or `None` when the dump did not contain it.
    pub fn finish(self) -> Result<Option<Table>, DecodeError> {
        if !self.found {
            return Ok(None);
        }
        let mut sets = Vec::with_capacity(self.sets.len());
        for header in &self.sets {
            let keys = self.elements.get(&header.name).map_or(&[][..], |v| v);
            let set = if let Some(d) = header.dynamic {
                Set::dynamic(&header.name, header.key.clone(), d.size)
            } else if header.interval {
                let keys: Vec<(Vec<u8>, bool)> =
                    keys.iter().map(|e| (e.key.clone(), e.end)).collect();
                Set::new(
                    &header.name,
                    header.key.clone(),
                    true,
                    intervals(&header.key, &keys)?,
                )
            } else {
                let elements = keys
                    .iter()
                    .map(|e| element(header, e))
                    .collect::<Result<Vec<_>, _>>()?;
                match header.data {
                    Some(SetData::Verdict) => {
                        Set::verdict_map(&header.name, header.key.clone(), elements)
                    }
                    None => Set::of(&header.name, header.key.clone(), elements),
                }
            };
            sets.push(set);
        }
        let mut rules = self.rules;
        // Rules of a chain come in chain order; handles only grow, so a
        // stable sort by handle keeps that order whatever the dump did.
        rules.sort_by_key(|(_, handle, _)| *handle);
        let chains = self
            .chains
            .into_iter()
            .map(|(name, base)| Chain {
                rules: rules
                    .iter()
                    .filter(|(c, _, _)| *c == name)
                    .map(|(_, _, r)| r.clone())
                    .collect(),
                name,
                base,
            })
            .collect();
        Ok(Some(Table {
            family: self.family,
            name: self.name,
            comment: self.comment,
            sets,
            chains,
        }))
    }

    fn table(&mut self, attrs: &[u8]) -> Result<(), DecodeError> {
        let (name, comment) = table_attrs(attrs)?;
        if name.as_deref() == Some(self.name.as_str()) {
            self.found = true;
            self.comment = comment;
        }
        Ok(())
    }

    fn set(&mut self, attrs: &[u8]) -> Result<(), DecodeError> {
        let (mut tbl, mut name, mut key, mut flags) = (None, None, None, 0);
        let (mut udata, mut size, mut data) = (&[][..], None, None);
        for a in Attrs::new(attrs) {
            let (kind, value) = a?;
            match kind {
                set::TABLE => tbl = Some(string(value, "set table")?),
                set::NAME => name = Some(string(value, "set name")?),
                set::KEY_TYPE => key = Some(be_u32(value, "set key type")?),
                set::DATA_TYPE => data = Some(be_u32(value, "set data type")?),
                set::FLAGS => flags = be_u32(value, "set flags")?,
                set::USERDATA => udata = value,
                set::DESC => {
                    for d in Attrs::new(value) {
                        let (kind, value) = d?;
                        if kind == set::DESC_SIZE {
                            size = Some(be_u32(value, "set size")?);
                        }
                    }
                }
                _ => {}
            }
        }
        if tbl.as_deref() != Some(self.name.as_str()) {
            return Ok(());
        }
        let name = name.ok_or(DecodeError::Missing("set name"))?;
        let key = key
            .and_then(|k| udata::parse_set_key(k, udata))
            .ok_or(DecodeError::Unsupported("set key type"))?;
        let dynamic = (flags & set::F_EVAL != 0).then_some(Dynamic {
            size: size.unwrap_or(0),
        });
        let data = match (flags & set::F_MAP != 0, data) {
            (false, _) => None,
            (true, Some(d)) => {
                Some(SetData::from_datatype(d).ok_or(DecodeError::Unsupported("map data type"))?)
            }
            (true, None) => return Err(DecodeError::Missing("map data type")),
        };
        if !self.sets.iter().any(|s| s.name == name) {
            self.sets.push(SetHeader {
                name,
                key,
                interval: flags & set::F_INTERVAL != 0,
                dynamic,
                data,
            });
        }
        Ok(())
    }

    fn set_elements(&mut self, attrs: &[u8]) -> Result<(), DecodeError> {
        let (mut tbl, mut set_name, mut elems) = (None, None, &[][..]);
        for a in Attrs::new(attrs) {
            let (kind, value) = a?;
            match kind {
                elem::LIST_TABLE => tbl = Some(string(value, "element table")?),
                elem::LIST_SET => set_name = Some(string(value, "element set")?),
                elem::LIST_ELEMENTS => elems = value,
                _ => {}
            }
        }
        if tbl.as_deref() != Some(self.name.as_str()) {
            return Ok(());
        }
        let set_name = set_name.ok_or(DecodeError::Missing("element list set name"))?;
        let entry = self.elements.entry(set_name).or_default();
        // Each element is a nested attribute; like the kernel, accept any
        // type for it (libnftnl numbers them 1, 2, 3… instead of using
        // NFTA_LIST_ELEM throughout).
        for e in Attrs::new(elems) {
            let (_, value) = e?;
            let (mut key, mut end, mut verdict) = (None, false, None);
            for a in Attrs::new(value) {
                let (kind, value) = a?;
                match kind {
                    elem::KEY => key = Some(data_value(value)?),
                    elem::DATA => verdict = Some(data_verdict(value)?),
                    elem::FLAGS => {
                        end = be_u32(value, "element flags")? & elem::F_INTERVAL_END != 0
                    }
                    _ => {}
                }
            }
            entry.push(ElementBytes {
                key: key.ok_or(DecodeError::Missing("element key"))?,
                end,
                verdict,
            });
        }
        Ok(())
    }

    fn chain(&mut self, attrs: &[u8]) -> Result<(), DecodeError> {
        let (mut tbl, mut name, mut hook, mut prio, mut policy) = (None, None, None, None, None);
        for a in Attrs::new(attrs) {
            let (kind, value) = a?;
            match kind {
                chain::TABLE => tbl = Some(string(value, "chain table")?),
                chain::NAME => name = Some(string(value, "chain name")?),
                chain::POLICY => policy = Some(be_u32(value, "chain policy")?),
                chain::HOOK => {
                    for h in Attrs::new(value) {
                        let (kind, value) = h?;
                        match kind {
                            chain::HOOK_HOOKNUM => hook = Some(be_u32(value, "hook number")?),
                            // The kernel stores the priority as a signed int.
                            chain::HOOK_PRIORITY => {
                                prio = Some(be_u32(value, "hook priority")? as i32)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if tbl.as_deref() != Some(self.name.as_str()) {
            return Ok(());
        }
        let name = name.ok_or(DecodeError::Missing("chain name"))?;
        let base = match hook {
            None => None,
            Some(n) => Some(BaseChain {
                hook: Hook::from_number(n).ok_or(DecodeError::Unsupported("chain hook"))?,
                priority: prio.ok_or(DecodeError::Missing("chain priority"))?,
                policy: match policy {
                    Some(0) => Verdict::Drop,
                    _ => Verdict::Accept,
                },
            }),
        };
        self.chains.push((name, base));
        Ok(())
    }

    fn rule(&mut self, attrs: &[u8]) -> Result<(), DecodeError> {
        let (mut tbl, mut chain_name, mut handle, mut exprs) = (None, None, 0, Vec::new());
        let mut comment = None;
        for a in Attrs::new(attrs) {
            let (kind, value) = a?;
            match kind {
                rule::TABLE => tbl = Some(string(value, "rule table")?),
                rule::CHAIN => chain_name = Some(string(value, "rule chain")?),
                rule::HANDLE => handle = be_u64(value, "rule handle")?,
                rule::USERDATA => comment = udata::parse_rule_comment(value),
                rule::EXPRESSIONS => {
                    for e in Attrs::new(value) {
                        let (_, value) = e?;
                        exprs.push(expr::decode(value)?);
                    }
                }
                _ => {}
            }
        }
        if tbl.as_deref() != Some(self.name.as_str()) {
            return Ok(());
        }
        let chain_name = chain_name.ok_or(DecodeError::Missing("rule chain"))?;
        self.rules
            .push((chain_name, handle, Rule { exprs, comment }));
        Ok(())
    }
}

/// Name and comment of a NEWTABLE message.
pub(crate) fn table_attrs(attrs: &[u8]) -> Result<(Option<String>, Option<String>), DecodeError> {
    let (mut name, mut comment) = (None, None);
    for a in Attrs::new(attrs) {
        let (kind, value) = a?;
        match kind {
            table::NAME => name = Some(string(value, "table name")?),
            table::USERDATA => comment = udata::parse_table_comment(value),
            _ => {}
        }
    }
    Ok((name, comment))
}

/// The element of a set (with its verdict, for a verdict map).
fn element(header: &SetHeader, e: &ElementBytes) -> Result<Element, DecodeError> {
    let key = Element::from_key(&header.key, &e.key).ok_or(DecodeError::Malformed(
        "element key does not match the set's key type",
    ))?;
    match (header.data, &e.verdict) {
        (None, None) => Ok(key),
        (Some(SetData::Verdict), Some(v)) => MapVerdict::new(v)
            .and_then(|v| Element::mapped(key.values(), v))
            .ok_or(DecodeError::Unsupported("map element verdict")),
        (None, Some(_)) => Err(DecodeError::Malformed("data in an element of a set")),
        (Some(_), None) => Err(DecodeError::Missing("map element data")),
    }
}

/// The verdict of a nested `NFTA_DATA_VERDICT` (a map element's data).
fn data_verdict(nested: &[u8]) -> Result<Verdict, DecodeError> {
    for a in Attrs::new(nested) {
        let (kind, value) = a?;
        if kind == list::DATA_VERDICT {
            return expr::verdict(value);
        }
    }
    Err(DecodeError::Unsupported(
        "map element data that is not a verdict",
    ))
}

/// The bytes of a nested `NFTA_DATA_VALUE`.
pub(crate) fn data_value(nested: &[u8]) -> Result<Vec<u8>, DecodeError> {
    for a in Attrs::new(nested) {
        let (kind, value) = a?;
        if kind == list::DATA_VALUE {
            return Ok(value.to_vec());
        }
    }
    Err(DecodeError::Missing("data value"))
}

/// The address of an interval key of a one-field address set.
fn addr(key: &SetKey, bytes: &[u8]) -> Result<IpAddr, DecodeError> {
    match Element::from_key(key, bytes).and_then(|e| e.net()) {
        Some(n) if key.fields().len() == 1 => Ok(n.addr()),
        _ => Err(DecodeError::Malformed(
            "element key length does not match the set's key type",
        )),
    }
}

/// Turn interval start/end keys back into prefixes. The kernel returns them
/// in its own order (rbtree: descending), so sort by key first; an end key
/// sorts before a start key at the same address because a range that ends
/// where the next begins is two ranges.
fn intervals(key: &SetKey, keys: &[(Vec<u8>, bool)]) -> Result<Vec<IpNet>, DecodeError> {
    let mut points = keys
        .iter()
        .map(|(k, end)| addr(key, k).map(|a| (a, !*end)))
        .collect::<Result<Vec<_>, _>>()?;
    points.sort();
    let mut out = Vec::new();
    let mut start: Option<IpAddr> = None;
    for (addr, is_start) in points {
        match (is_start, start) {
            (true, _) => start = Some(addr),
            (false, Some(s)) => {
                out.extend(range_prefixes(s, addr, true));
                start = None;
            }
            // An end with no start: the zero-address closing element.
            (false, None) => {}
        }
    }
    if let Some(s) = start {
        out.extend(range_prefixes(s, s, false));
    }
    Ok(out)
}

/// The prefixes covering `[start, end)`, or `[start, top of the space]`
/// when `bounded` is false.
fn range_prefixes(start: IpAddr, end: IpAddr, bounded: bool) -> Vec<IpNet> {
    match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            let last = if bounded {
                match u32::from(e).checked_sub(1) {
                    Some(l) => l.into(),
                    None => return vec![],
                }
            } else {
                std::net::Ipv4Addr::BROADCAST
            };
            if u32::from(last) < u32::from(s) {
                return vec![];
            }
            ipnet::Ipv4Subnets::new(s, last, 0).map(IpNet::V4).collect()
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => {
            let last = if bounded {
                match u128::from(e).checked_sub(1) {
                    Some(l) => l.into(),
                    None => return vec![],
                }
            } else {
                std::net::Ipv6Addr::from(u128::MAX)
            };
            if u128::from(last) < u128::from(s) {
                return vec![];
            }
            ipnet::Ipv6Subnets::new(s, last, 0).map(IpNet::V6).collect()
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Vec<u8> {
        match s.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn intervals_in_kernel_order_become_prefixes() {
        // The rbtree backend dumps in descending order, ends first.
        let keys = vec![
            (key("192.169.0.0"), true),
            (key("192.168.0.0"), false),
            (key("10.77.2.0"), true),
            (key("10.77.1.0"), false),
            (key("0.0.0.0"), true),
        ];
        assert_eq!(
            intervals(&SetKey::ipv4(), &keys).unwrap(),
            nets(&["10.77.1.0/24", "192.168.0.0/16"])
        );
    }

    #[test]
    fn interval_reaching_the_top_has_no_end() {
        let keys = vec![(key("0.0.0.0"), false)];
        assert_eq!(
            intervals(&SetKey::ipv4(), &keys).unwrap(),
            nets(&["0.0.0.0/0"])
        );
        let keys = vec![(key("fd00::"), true), (key("ff00::"), false)];
        assert_eq!(
            intervals(&SetKey::ipv6(), &keys).unwrap(),
            nets(&["ff00::/8"])
        );
    }

    #[test]
    fn range_that_is_not_a_prefix_is_covered_exactly() {
        let keys = vec![(key("10.0.0.1"), false), (key("10.0.0.4"), true)];
        assert_eq!(
            intervals(&SetKey::ipv4(), &keys).unwrap(),
            nets(&["10.0.0.1/32", "10.0.0.2/31"])
        );
    }

    #[test]
    fn wrong_key_length_is_an_error_not_a_panic() {
        let keys = vec![(vec![1, 2, 3], false)];
        assert!(intervals(&SetKey::ipv4(), &keys).is_err());
    }
}
