//! The kernel side of the commands: read trafficjam's tables, apply a
//! ruleset in one transaction, remove tables.

use std::path::Path;

use trafficjam_core::model::{Family, Table};
use trafficjam_core::wire::{encode, plan, Batch, Change};
use trafficjam_core::{is_trafficjam_table, names, Ruleset};
use trafficjam_netlink::{
    cut_connections, list_tables, read_for_update, read_table, NetfilterSocket,
};

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
    /// changed for each table. The transaction carries the generation the
    /// state was read at; if another program changed the ruleset in between,
    /// the kernel refuses it and the state is read again.
    pub fn apply(&mut self, ruleset: &Ruleset) -> Result<Vec<(Table, Change)>, CliError> {
        const ATTEMPTS: usize = 5;
        let names: Vec<(Family, &str)> = ruleset
            .tables
            .iter()
            .map(|t| (t.family, t.name.as_str()))
            .collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (genid, actual) = read_for_update(&mut self.socket, &names)?;
            let mut batch = Batch::with_generation(self.first_seq(), genid);
            let changes: Vec<(Table, Change)> = ruleset
                .tables
                .iter()
                .zip(&actual)
                .map(|(t, a)| (t.clone(), plan(&mut batch, t, a.as_ref())))
                .collect();
            if batch.is_empty() {
                return Ok(changes);
            }
            match self.socket.send(&batch.finish()) {
                Ok(()) => {
                    self.cut_revoked(&ruleset.tables, &actual)?;
                    return Ok(changes);
                }
                Err(e) if e.is_generation_changed() && attempt < ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Addresses that just left a whitelist lose the connections they had
    /// opened into the managed subnets: whoever gets such an address next
    /// must not be able to ride on them.
    fn cut_revoked(
        &mut self,
        desired: &[Table],
        actual: &[Option<Table>],
    ) -> Result<usize, CliError> {
        let mut revoked = Vec::new();
        let mut subnets = Vec::new();
        for (want, have) in desired.iter().zip(actual) {
            let Some(have) = have else { continue };
            for name in [names::WHITELIST4, names::WHITELIST6] {
                let kept = want
                    .set(name)
                    .map(|s| s.elements.clone())
                    .unwrap_or_default();
                if let Some(old) = have.set(name) {
                    revoked.extend(
                        old.elements
                            .iter()
                            .filter(|e| !kept.contains(e))
                            .map(|e| e.addr()),
                    );
                }
            }
            for name in [names::SUBNETS4, names::SUBNETS6] {
                subnets.extend(
                    want.set(name)
                        .map(|s| s.elements.clone())
                        .unwrap_or_default(),
                );
            }
        }
        if revoked.is_empty() {
            return Ok(0);
        }
        Ok(cut_connections(&mut self.socket, |c| {
            revoked.contains(&c.source) && subnets.iter().any(|s| s.contains(&c.destination))
        })?)
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
