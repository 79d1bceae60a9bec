//! Requests that read the kernel's state: generation id and dumps.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::{
    ChainMessage, GenMessage, NfTablesMessage, RuleAttribute, RuleMessage, SetAttribute,
    SetElementList, SetElementMessage, SetMessage, TableMessage,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};

use super::attr::{gen, msg};
use super::batch::family_header;
use super::decode::{parse, table_attrs};
use super::nla::{be_u32, Attrs, Message};
use super::DecodeError;
use crate::model::Family;

fn encode(family: NetfilterProtoFamily, message: NfTablesMessage, flags: u16) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    let inner = NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), message);
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    bytes
}

/// `NFT_MSG_GETGEN`: ask for the ruleset generation id.
pub fn get_generation() -> Vec<u8> {
    encode(
        NetfilterProtoFamily::Unspec,
        NfTablesMessage::GetGen(GenMessage { attributes: vec![] }),
        0,
    )
}

/// The generation id from the kernel's `NFT_MSG_NEWGEN` reply.
pub fn parse_generation(bytes: &[u8]) -> Option<u32> {
    let m = Message::parse(bytes).ok()?;
    if m.subsys != 10 || m.kind != msg::NEWGEN {
        return None;
    }
    Attrs::new(m.attrs)
        .map_while(Result::ok)
        .find(|(kind, _)| *kind == gen::ID)
        .and_then(|(_, value)| be_u32(value, "generation id").ok())
}

/// Dump every table of every family (to find trafficjam's own).
pub fn dump_tables() -> Vec<u8> {
    encode(
        NetfilterProtoFamily::Unspec,
        NfTablesMessage::GetTable(TableMessage { attributes: vec![] }),
        NLM_F_DUMP,
    )
}

/// Dump the tables of one family.
pub fn dump_tables_of(family: Family) -> Vec<u8> {
    encode(
        family_header(family),
        NfTablesMessage::GetTable(TableMessage { attributes: vec![] }),
        NLM_F_DUMP,
    )
}

/// Dump the sets of one table.
pub fn dump_sets(family: Family, table: &str) -> Vec<u8> {
    encode(
        family_header(family),
        NfTablesMessage::GetSet(SetMessage {
            attributes: vec![SetAttribute::Table(table.to_string())],
        }),
        NLM_F_DUMP,
    )
}

/// Dump the elements of one set.
pub fn dump_set_elements(family: Family, table: &str, set: &str) -> Vec<u8> {
    encode(
        family_header(family),
        NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![
                SetElementList::Table(table.to_string()),
                SetElementList::Set(set.to_string()),
            ],
        }),
        NLM_F_DUMP,
    )
}

/// Dump the chains of one family (the kernel does not filter chain dumps
/// by table; [`TableDump`](super::TableDump) does).
pub fn dump_chains(family: Family) -> Vec<u8> {
    encode(
        family_header(family),
        NfTablesMessage::GetChain(ChainMessage { attributes: vec![] }),
        NLM_F_DUMP,
    )
}

/// Dump the rules of one table.
pub fn dump_rules(family: Family, table: &str) -> Vec<u8> {
    encode(
        family_header(family),
        NfTablesMessage::GetRule(RuleMessage {
            attributes: vec![RuleAttribute::Table(table.to_string())],
        }),
        NLM_F_DUMP,
    )
}

/// A table as listed by a table dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    /// Family of the table.
    pub family: Family,
    /// Name of the table.
    pub name: String,
    /// Comment from the table's user data.
    pub comment: Option<String>,
}

/// The table described by one message of a table dump, if it is a table
/// of a family trafficjam knows.
pub fn parse_table_summary(bytes: &[u8]) -> Result<Option<TableSummary>, DecodeError> {
    let Some((family, m)) = parse(bytes)? else {
        return Ok(None);
    };
    if m.kind != msg::NEWTABLE {
        return Ok(None);
    }
    let (name, comment) = table_attrs(m.attrs)?;
    Ok(name.map(|name| TableSummary {
        family,
        name,
        comment,
    }))
}

/// The table an nf_tables change notification (from the
/// `NFNLGRP_NFTABLES` multicast group) is about: every object message
/// carries its table's name as attribute 1 (`NFTA_TABLE_NAME`,
/// `NFTA_CHAIN_TABLE`, `NFTA_RULE_TABLE`, `NFTA_SET_TABLE`,
/// `NFTA_SET_ELEM_LIST_TABLE`). `None` for other messages (such as the
/// `NEWGEN` closing each transaction) and for malformed ones.
pub fn notification_table(bytes: &[u8]) -> Option<(Family, String)> {
    let (family, m) = parse(bytes).ok()??;
    if m.kind > msg::DELSETELEM {
        return None;
    }
    Attrs::new(m.attrs)
        .map_while(Result::ok)
        .find(|(kind, _)| *kind == 1)
        .and_then(|(_, v)| crate::wire::nla::string(v, "table name").ok())
        .map(|name| (family, name))
}
