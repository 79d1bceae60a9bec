//! The kernel side of the commands: read trafficjam's tables, apply a
//! ruleset in one transaction, remove tables.

use std::path::Path;

use trafficjam_core::model::{Family, Table};
use trafficjam_core::wire::{encode, plan, request, Batch, Change, TableDump};
use trafficjam_core::{is_trafficjam_table, Ruleset};
use trafficjam_netlink::{consistent, NetfilterSocket, NetlinkError};

use crate::error::CliError;

/// A netfilter socket in the namespace trafficjam acts on.
pub struct Firewall {
    socket: NetfilterSocket,
}

impl Firewall {
    /// Open the socket, inside `netns` when given.
    pub fn open(netns: Option<&Path>) -> Result<Firewall, CliError> {
        if let Some(path) = netns {
            if !path.exists() {
                return Err(CliError::NoNamespace(path.to_path_buf()));
            }
        }
        Ok(Firewall {
            socket: NetfilterSocket::open_in(netns)?,
        })
    }

    /// Read one table back from the kernel; `None` when it does not exist.
    pub fn read_table(&mut self, family: Family, name: &str) -> Result<Option<Table>, CliError> {
        let getgen = request::get_generation();
        let table = consistent(
            &mut self.socket,
            &getgen,
            request::parse_generation,
            |sock| read_table_once(sock, family, name),
        )?;
        Ok(table)
    }

    /// The trafficjam tables the kernel has: (family, name).
    pub fn list_own_tables(&mut self) -> Result<Vec<(Family, String)>, CliError> {
        let replies = self.socket.request(&request::dump_tables())?;
        let mut out = Vec::new();
        for reply in replies {
            if let Some(t) = request::parse_table_summary(&reply)? {
                if is_trafficjam_table(&t.name, t.comment.as_deref()) {
                    out.push((t.family, t.name));
                }
            }
        }
        Ok(out)
    }

    /// Make the kernel enforce `ruleset`, in one transaction. Returns what
    /// changed for each table.
    pub fn apply(&mut self, ruleset: &Ruleset) -> Result<Vec<(Table, Change)>, CliError> {
        let mut batch = Batch::new(self.first_seq());
        let mut changes = Vec::new();
        for table in &ruleset.tables {
            let actual = self.read_table(table.family, &table.name)?;
            let change = plan(&mut batch, table, actual.as_ref());
            changes.push((table.clone(), change));
        }
        if !batch.is_empty() {
            self.socket.send(&batch.finish())?;
        }
        Ok(changes)
    }

    /// Delete the given tables in one transaction.
    pub fn delete_tables(&mut self, tables: &[(Family, String)]) -> Result<(), CliError> {
        if tables.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new(self.first_seq());
        for (family, name) in tables {
            encode::delete_table(&mut batch, *family, name);
        }
        self.socket.send(&batch.finish())?;
        Ok(())
    }

    /// Reserve sequence numbers for one batch: no batch of ours comes
    /// near 65,536 messages (elements are packed 1,024 per message).
    fn first_seq(&mut self) -> u32 {
        self.socket.next_seq(1 << 16)
    }
}

fn read_table_once(
    sock: &mut NetfilterSocket,
    family: Family,
    name: &str,
) -> Result<Option<Table>, NetlinkError> {
    let mut dump = TableDump::new(family, name);
    let feed = |dump: &mut TableDump, replies: Vec<Vec<u8>>| -> Result<(), NetlinkError> {
        for r in replies {
            dump.add_message(&r)
                .map_err(|e| NetlinkError::Malformed(e.to_string()))?;
        }
        Ok(())
    };
    feed(&mut dump, sock.request(&request::dump_tables_of(family))?)?;
    feed(
        &mut dump,
        not_found_is_empty(sock.request(&request::dump_sets(family, name)))?,
    )?;
    for set in dump.set_names() {
        let replies =
            not_found_is_empty(sock.request(&request::dump_set_elements(family, name, &set)))?;
        feed(&mut dump, replies)?;
    }
    feed(&mut dump, sock.request(&request::dump_chains(family))?)?;
    feed(
        &mut dump,
        not_found_is_empty(sock.request(&request::dump_rules(family, name)))?,
    )?;
    dump.finish()
        .map_err(|e| NetlinkError::Malformed(e.to_string()))
}

/// Dumps filtered by a table that does not exist answer ENOENT: that is an
/// empty answer, not a failure.
fn not_found_is_empty(r: Result<Vec<Vec<u8>>, NetlinkError>) -> Result<Vec<Vec<u8>>, NetlinkError> {
    match r {
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        r => r,
    }
}
