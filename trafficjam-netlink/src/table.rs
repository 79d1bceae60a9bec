//! Reading whole tables back from the kernel.

use trafficjam_core::model::{Family, Table};
use trafficjam_core::wire::{request, TableDump, TableSummary};

use crate::{consistent, NetfilterSocket, NetlinkError};

/// Read one table (sets, elements, chains, rules) as one consistent
/// generation of the ruleset; `None` when the table does not exist.
pub fn read_table(
    sock: &mut NetfilterSocket,
    family: Family,
    name: &str,
) -> Result<Option<Table>, NetlinkError> {
    let getgen = request::get_generation();
    consistent(sock, &getgen, request::parse_generation, |sock| {
        read_once(sock, family, name)
    })
}

/// The ruleset's current generation id.
pub fn generation(sock: &mut NetfilterSocket) -> Result<u32, NetlinkError> {
    sock.request(&request::get_generation())?
        .iter()
        .find_map(|m| request::parse_generation(m))
        .ok_or_else(|| NetlinkError::Malformed("no generation id in the answer".into()))
}

/// Read tables to compute a change: the generation id first, then each
/// table. The dumps are not re-checked against a second generation query:
/// send the change in [`Batch::with_generation`](trafficjam_core::wire::Batch::with_generation)
/// and the kernel refuses it if anything changed since (then read again).
pub fn read_for_update(
    sock: &mut NetfilterSocket,
    tables: &[(Family, &str)],
) -> Result<(u32, Vec<Option<Table>>), NetlinkError> {
    let s = snapshot(sock, tables)?;
    Ok((s.genid, s.tables))
}

/// What [`snapshot`] read, in this order.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The ruleset generation, read first.
    pub genid: u32,
    /// Every table of the kernel.
    pub listed: Vec<TableSummary>,
    /// The asked-for tables, `None` where absent.
    pub tables: Vec<Option<Table>>,
    /// The tables among them that hold exactly what this socket's last
    /// commits made them (compiled, with sorted sets), rather than what a
    /// read found: only those take a [`PortUpdate`] planned against them.
    ///
    /// [`PortUpdate`]: trafficjam_core::PortUpdate
    pub committed: Vec<(Family, String)>,
}

/// [`read_for_update`], also keeping the list of every table.
pub(crate) fn snapshot(
    sock: &mut NetfilterSocket,
    tables: &[(Family, &str)],
) -> Result<Snapshot, NetlinkError> {
    let genid = generation(sock)?;
    // One table list for every family, then the contents only of the
    // tables that exist (none, on a first install).
    let listed = list_tables(sock)?;
    let mut out = Vec::with_capacity(tables.len());
    for (family, name) in tables {
        let exists = listed
            .iter()
            .any(|t| t.family == *family && t.name == *name);
        out.push(if exists {
            read_once(sock, *family, name)?
        } else {
            None
        });
    }
    Ok(Snapshot {
        genid,
        listed,
        tables: out,
        committed: Vec::new(),
    })
}

/// Every table the kernel has, in every family trafficjam knows.
pub fn list_tables(sock: &mut NetfilterSocket) -> Result<Vec<TableSummary>, NetlinkError> {
    let mut out = Vec::new();
    for reply in sock.request(&request::dump_tables())? {
        if let Some(t) = request::parse_table_summary(&reply).map_err(malformed)? {
            out.push(t);
        }
    }
    Ok(out)
}

fn malformed(e: trafficjam_core::wire::DecodeError) -> NetlinkError {
    NetlinkError::Malformed(e.to_string())
}

fn read_once(
    sock: &mut NetfilterSocket,
    family: Family,
    name: &str,
) -> Result<Option<Table>, NetlinkError> {
    let mut dump = TableDump::new(family, name);
    let feed = |dump: &mut TableDump, replies: Vec<Vec<u8>>| -> Result<(), NetlinkError> {
        replies
            .iter()
            .try_for_each(|r| dump.add_message(r).map_err(malformed))
    };
    feed(&mut dump, sock.request(&request::dump_tables_of(family))?)?;
    if !dump.has_table() {
        // Nothing more to read: the common case of a first install.
        return dump.finish().map_err(malformed);
    }
    // Dumps filtered by a table that does not exist (any more) answer
    // ENOENT: that is an empty answer, not a failure.
    feed(
        &mut dump,
        empty_if_missing(sock.request(&request::dump_sets(family, name)))?,
    )?;
    for set in dump.set_names() {
        let r = sock.request(&request::dump_set_elements(family, name, &set));
        feed(&mut dump, empty_if_missing(r)?)?;
    }
    feed(&mut dump, sock.request(&request::dump_chains(family))?)?;
    feed(
        &mut dump,
        empty_if_missing(sock.request(&request::dump_rules(family, name)))?,
    )?;
    dump.finish().map_err(malformed)
}

fn empty_if_missing(r: Result<Vec<Vec<u8>>, NetlinkError>) -> Result<Vec<Vec<u8>>, NetlinkError> {
    match r {
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        r => r,
    }
}
