//! A ruleset made true in the kernel: read trafficjam's tables, compute the
//! smallest change, send it as one transaction that the kernel refuses if
//! anyone changed the ruleset in between, and retry from a fresh read.

use std::path::Path;

use trafficjam_core::model::{Family, Table};
use trafficjam_core::wire::{encode, plan, Batch, Change};
use trafficjam_core::{conntrack_probe_table, is_trafficjam_table, names, Ruleset, Tracking};

use crate::table::{snapshot, Snapshot};
use crate::{cut_connections, list_tables, read_table, NetfilterSocket, NetlinkError};

/// How often a change is recomputed when the ruleset keeps changing under
/// it (each retry reads the kernel again).
const ATTEMPTS: usize = 8;

/// A netfilter socket in the namespace trafficjam acts on.
#[derive(Debug)]
pub struct Firewall {
    socket: NetfilterSocket,
    tracking: Option<Tracking>,
}

impl Firewall {
    /// Open the socket, inside `netns` when given.
    pub fn open_in(netns: Option<&Path>) -> Result<Firewall, NetlinkError> {
        Ok(Firewall {
            socket: NetfilterSocket::open_in(netns)?,
            tracking: None,
        })
    }

    /// How the bridge layer can track flows on this kernel: conntrack for
    /// bridged frames when the kernel has it (nf_conntrack_bridge, loaded
    /// on demand), flow sets otherwise. Found once by sending a table with
    /// a `ct` rule and its deletion in one batch (nothing is left either
    /// way); any refusal means flow sets, never a failure.
    pub fn bridge_tracking(&mut self) -> Tracking {
        if let Some(t) = self.tracking {
            return t;
        }
        let probe = conntrack_probe_table(&format!("trafficjam-probe-{}", std::process::id()));
        let mut batch = Batch::new(self.first_seq());
        encode::create_table(&mut batch, &probe);
        encode::delete_table(&mut batch, probe.family, &probe.name);
        let t = match self.socket.send(&batch.finish()) {
            Ok(()) => Tracking::Conntrack,
            Err(_) => Tracking::FlowSets,
        };
        self.tracking = Some(t);
        t
    }

    /// Read one table back from the kernel; `None` when it does not exist.
    pub fn read_table(
        &mut self,
        family: Family,
        name: &str,
    ) -> Result<Option<Table>, NetlinkError> {
        read_table(&mut self.socket, family, name)
    }

    /// The trafficjam tables the kernel has: (family, name).
    pub fn list_own_tables(&mut self) -> Result<Vec<(Family, String)>, NetlinkError> {
        Ok(list_tables(&mut self.socket)?
            .into_iter()
            .filter(|t| is_trafficjam_table(&t.name, t.comment.as_deref()))
            .map(|t| (t.family, t.name))
            .collect())
    }

    /// Every trafficjam table the kernel has, read whole.
    pub fn read_own_tables(&mut self) -> Result<Vec<Table>, NetlinkError> {
        let mut tables = Vec::new();
        for (family, name) in self.list_own_tables()? {
            // A table deleted between the list and the read is just gone.
            if let Some(t) = self.read_table(family, &name)? {
                tables.push(t);
            }
        }
        Ok(tables)
    }

    /// Make the kernel enforce `ruleset`, in one transaction; returns what
    /// changed for each table.
    pub fn apply(&mut self, ruleset: &Ruleset) -> Result<Vec<(Table, Change)>, NetlinkError> {
        self.converge(ruleset, |_| false)
    }

    /// Like [`apply`](Self::apply), and in the same transaction delete every
    /// trafficjam table that `stale` claims and `ruleset` does not have:
    /// the kernel then holds exactly `ruleset` among those tables.
    pub fn converge(
        &mut self,
        ruleset: &Ruleset,
        stale: impl Fn(&str) -> bool,
    ) -> Result<Vec<(Table, Change)>, NetlinkError> {
        let names: Vec<(Family, &str)> = ruleset
            .tables
            .iter()
            .map(|t| (t.family, t.name.as_str()))
            .collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The generation first: if anything changes after it was read,
            // the kernel refuses the batch and we read again.
            let Snapshot {
                genid,
                listed,
                tables: actual,
            } = snapshot(&mut self.socket, &names)?;
            let mut batch = Batch::with_generation(self.first_seq(), genid);
            let changes: Vec<(Table, Change)> = ruleset
                .tables
                .iter()
                .zip(&actual)
                .map(|(t, a)| (t.clone(), plan(&mut batch, t, a.as_ref())))
                .collect();
            for t in listed.iter().filter(|t| {
                is_trafficjam_table(&t.name, t.comment.as_deref())
                    && stale(&t.name)
                    && !ruleset
                        .tables
                        .iter()
                        .any(|w| w.family == t.family && w.name == t.name)
            }) {
                encode::delete_table(&mut batch, t.family, &t.name);
            }
            if batch.is_empty() {
                return Ok(changes);
            }
            match self.socket.send(&batch.finish()) {
                Ok(()) => {
                    self.cut_revoked(&ruleset.tables, &actual)?;
                    return Ok(changes);
                }
                Err(e) if e.is_generation_changed() && attempt < ATTEMPTS => continue,
                Err(e) => return Err(e),
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
    ) -> Result<usize, NetlinkError> {
        let mut revoked = Vec::new();
        let mut subnets = Vec::new();
        for (want, have) in desired.iter().zip(actual) {
            let Some(have) = have else { continue };
            for name in [names::WHITELIST4, names::WHITELIST6] {
                let kept = want.set(name).map(|s| s.nets()).unwrap_or_default();
                if let Some(old) = have.set(name) {
                    revoked.extend(
                        old.nets()
                            .into_iter()
                            .filter(|e| !kept.contains(e))
                            .map(|e| e.addr()),
                    );
                }
            }
            for name in [names::SUBNETS4, names::SUBNETS6] {
                subnets.extend(want.set(name).map(|s| s.nets()).unwrap_or_default());
            }
        }
        if revoked.is_empty() {
            return Ok(0);
        }
        cut_connections(&mut self.socket, |c| {
            revoked.contains(&c.source) && subnets.iter().any(|s| s.contains(&c.destination))
        })
    }

    /// Delete the given tables in one transaction.
    pub fn delete_tables(&mut self, tables: &[(Family, String)]) -> Result<(), NetlinkError> {
        if tables.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new(self.first_seq());
        for (family, name) in tables {
            encode::delete_table(&mut batch, *family, name);
        }
        self.socket.send(&batch.finish())
    }

    /// Reserve sequence numbers for one batch: no batch of ours comes
    /// near 65,536 messages (elements are packed 1,024 per message).
    fn first_seq(&mut self) -> u32 {
        self.socket.next_seq(1 << 16)
    }
}
