//! The kernel side of the commands: read trafficjam's tables, apply a
//! ruleset in one transaction, remove tables.

use std::path::Path;

use trafficjam_core::model::{Family, Table};
use trafficjam_core::wire::{encode, plan, Batch, Change};
use trafficjam_core::{is_trafficjam_table, Ruleset};
use trafficjam_netlink::{list_tables, read_table, NetfilterSocket};

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
        Ok(read_table(&mut self.socket, family, name)?)
    }

    /// The trafficjam tables the kernel has: (family, name).
    pub fn list_own_tables(&mut self) -> Result<Vec<(Family, String)>, CliError> {
        Ok(list_tables(&mut self.socket)?
            .into_iter()
            .filter(|t| is_trafficjam_table(&t.name, t.comment.as_deref()))
            .map(|t| (t.family, t.name))
            .collect())
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
