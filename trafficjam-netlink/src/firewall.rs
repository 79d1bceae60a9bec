//! A ruleset made true in the kernel: read trafficjam's tables, compute the
//! smallest change, send it as one transaction that the kernel refuses if
//! anyone changed the ruleset in between, and retry from a fresh read.
//!
//! What a transaction of this socket made the kernel hold is remembered
//! with the generation the commit created: the next change is planned
//! against that, without reading the kernel (a daemon reacting to one
//! container among hundreds sends a few elements, it need not dump them
//! all). The generation check keeps it safe: if anyone committed anything
//! since, the kernel refuses the batch and the tables are read again.

use std::path::Path;

use trafficjam_core::model::{Family, Table};
use trafficjam_core::wire::{encode, plan, Batch, Change, TableSummary};
use trafficjam_core::{
    conntrack_probe_table, is_trafficjam_table, names, PortUpdate, Ruleset, Tracking,
};

use crate::cuts::{addresses, held_in, holds, Deferred, Revoked};
use crate::table::{snapshot, Snapshot};
use crate::{list_tables, read_table, NetfilterSocket, NetlinkError};

/// Each table of a ruleset made true, and what its transaction changed.
pub type Changes = Vec<(TableSummary, Change)>;

/// Sequence numbers reserved per batch: no batch of ours comes near 65,536
/// messages (elements are packed 1,024 per message).
const SEQ_PER_BATCH: u32 = 1 << 16;

/// How often a change is recomputed when the ruleset keeps changing under
/// it (each retry reads the kernel again).
const ATTEMPTS: usize = 8;

/// What leaves the whitelists between `actual` and `desired`.
fn revoked(desired: &[Table], actual: &[Option<&Table>]) -> Revoked {
    let mut addrs = Vec::new();
    let mut subnets = Vec::new();
    for (want, have) in desired.iter().zip(actual) {
        let Some(have) = have else { continue };
        for name in [names::WHITELIST4, names::WHITELIST6] {
            let kept = want.set(name).map(|s| s.nets()).unwrap_or_default();
            if let Some(old) = have.set(name) {
                addrs.extend(
                    old.nets()
                        .into_iter()
                        .filter(|e| !kept.contains(e))
                        .map(|e| e.addr()),
                );
            }
        }
        if !addrs.is_empty() {
            subnets.extend(subnets_of(want));
        }
    }
    Revoked { addrs, subnets }
}

/// The managed subnets an `inet` table holds (none in a bridge table).
fn subnets_of(table: &Table) -> impl Iterator<Item = ipnet::IpNet> + '_ {
    [names::SUBNETS4, names::SUBNETS6]
        .into_iter()
        .filter_map(|name| table.set(name))
        .flat_map(|s| s.nets())
}

/// A netfilter socket in the namespace trafficjam acts on.
#[derive(Debug)]
pub struct Firewall {
    socket: NetfilterSocket,
    tracking: Option<Tracking>,
    known: Option<Snapshot>,
    reads: u64,
    /// Connection cuts put off (see [`Firewall::defer_cuts`]).
    deferred: Deferred,
}

impl Snapshot {
    /// Whether every table of `tables` is known: held, or not listed
    /// (absent).
    fn covers(&self, tables: &[(Family, &str)]) -> bool {
        tables.iter().all(|(f, n)| {
            self.table(*f, n).is_some()
                || !self.listed.iter().any(|t| t.family == *f && t.name == *n)
        })
    }

    /// The table held of that family and name.
    fn table(&self, family: Family, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .flatten()
            .find(|t| t.family == family && t.name == name)
    }

    /// `fresh`, with what `self` held of other tables when nothing was
    /// committed between the two reads.
    fn merged_into(self, mut fresh: Snapshot) -> Snapshot {
        if self.genid == fresh.genid {
            for t in self.tables.into_iter().flatten() {
                if fresh.table(t.family, &t.name).is_none() {
                    let ours = |(f, n): &&(Family, String)| *f == t.family && *n == t.name;
                    if let Some(c) = self.committed.iter().find(ours) {
                        fresh.committed.push(c.clone());
                    }
                    fresh.tables.push(Some(t));
                }
            }
        }
        fresh
    }

    /// What the kernel holds after a commit on top of `self` that made
    /// `desired` true and deleted `deleted` (taken, not copied: a daemon
    /// with hundreds of ports commits after every event).
    fn after(mut self, desired: Vec<Table>, deleted: &[(Family, String)]) -> Snapshot {
        // Each commit advances the generation by one. Were that ever not
        // so, the next batch is refused and the kernel is read again.
        self.genid = self.genid.wrapping_add(1);
        self.listed
            .retain(|t| !deleted.iter().any(|(f, n)| t.family == *f && t.name == *n));
        let mut tables: Vec<Table> = self.tables.into_iter().flatten().collect();
        tables.retain(|t| !deleted.iter().any(|(f, n)| t.family == *f && t.name == *n));
        self.committed
            .retain(|(f, n)| !deleted.iter().any(|(g, m)| f == g && n == m));
        for d in desired {
            if !self
                .committed
                .iter()
                .any(|(f, n)| *f == d.family && *n == d.name)
            {
                self.committed.push((d.family, d.name.clone()));
            }
            tables.retain(|t| !(t.family == d.family && t.name == d.name));
            if !self
                .listed
                .iter()
                .any(|t| t.family == d.family && t.name == d.name)
            {
                self.listed.push(summary_of(&d));
            }
            tables.push(d);
        }
        self.tables = tables.into_iter().map(Some).collect();
        self
    }
}

/// How a table is listed: its family, name and comment.
fn summary_of(t: &Table) -> TableSummary {
    TableSummary {
        family: t.family,
        name: t.name.clone(),
        comment: t.comment.clone(),
    }
}

impl Firewall {
    /// Open the socket, inside `netns` when given.
    pub fn open_in(netns: Option<&Path>) -> Result<Firewall, NetlinkError> {
        Ok(Firewall {
            socket: NetfilterSocket::open_in(netns)?,
            tracking: None,
            known: None,
            reads: 0,
            deferred: Deferred::default(),
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

    /// Forget what this socket's transactions made the kernel hold: the
    /// next change starts from a fresh read. Call it when the kernel may
    /// differ without a commit of ours having been refused, e.g. when
    /// someone else changed our tables: a change planned against what is
    /// remembered would find nothing to do.
    pub fn forget(&mut self) {
        self.known = None;
    }

    /// The port id the kernel's notifications of this socket's changes
    /// carry (see [`NetfilterSocket::portid`]).
    pub fn portid(&self) -> u32 {
        self.socket.portid()
    }

    /// How many times the tables were read to plan a change (the rest were
    /// planned against what the last transaction left).
    pub fn reads(&self) -> u64 {
        self.reads
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
    /// changed for each table. The ruleset is kept as what the kernel now
    /// holds, to plan the next change against.
    pub fn apply(&mut self, ruleset: Ruleset) -> Result<Changes, NetlinkError> {
        self.converge(ruleset, |_| false)
    }

    /// Like [`apply`](Self::apply), and in the same transaction delete every
    /// trafficjam table that `stale` claims and `ruleset` does not have:
    /// the kernel then holds exactly `ruleset` among those tables.
    pub fn converge(
        &mut self,
        ruleset: Ruleset,
        stale: impl Fn(&str) -> bool,
    ) -> Result<Changes, NetlinkError> {
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
            let known = match self.known.take() {
                Some(k) if attempt == 1 && k.covers(&names) => k,
                old => {
                    self.reads += 1;
                    let fresh = snapshot(&mut self.socket, &names)?;
                    match old {
                        Some(old) => old.merged_into(fresh),
                        None => fresh,
                    }
                }
            };
            let actual: Vec<Option<&Table>> =
                names.iter().map(|(f, n)| known.table(*f, n)).collect();
            let mut batch = Batch::with_generation(self.first_seq(), known.genid);
            let changes: Changes = ruleset
                .tables
                .iter()
                .zip(&actual)
                .map(|(t, a)| (summary_of(t), plan(&mut batch, t, *a)))
                .collect();
            let deleted: Vec<(Family, String)> = known
                .listed
                .iter()
                .filter(|t| {
                    is_trafficjam_table(&t.name, t.comment.as_deref())
                        && stale(&t.name)
                        && !ruleset
                            .tables
                            .iter()
                            .any(|w| w.family == t.family && w.name == t.name)
                })
                .map(|t| (t.family, t.name.clone()))
                .collect();
            for (family, name) in &deleted {
                encode::delete_table(&mut batch, *family, name);
            }
            if batch.is_empty() {
                self.known = Some(known);
                return Ok(changes);
            }
            let revoked = revoked(&ruleset.tables, &actual);
            // Who holds which address after this transaction: asked only
            // when a cut depends on it (a proxy left, or one's cut waits).
            let held = if revoked.addrs.is_empty() && self.deferred.len() == 0 {
                Default::default()
            } else {
                held_in(&ruleset.tables)
            };
            // An address given again: its old connections go first.
            let claimed = self.deferred.claimed(|a| held.contains(a));
            self.deferred.cut_or_keep(claimed, &mut self.socket)?;
            match self.socket.send(&batch.finish()) {
                Ok(()) => {
                    self.known = Some(known.after(ruleset.tables, &deleted));
                    let now = self.deferred.after(revoked, |a| held.contains(a));
                    self.deferred.cut_or_keep(now, &mut self.socket)?;
                    return Ok(changes);
                }
                Err(e) if e.is_generation_changed() && attempt < ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Send `update` (elements of the bridge table's port sets and of the
    /// `inet` table's whitelists, see
    /// [`Policy::port_update`](trafficjam_core::Policy::port_update)) as
    /// one transaction, planned against what the last one left, without
    /// compiling or comparing the rest; addresses it takes off a whitelist
    /// lose their connections, as with [`apply`](Self::apply). Returns what
    /// changed, or `None` (nothing sent) when the update does not fit what
    /// is known of the tables — known from a read rather than from this
    /// socket's last transaction, or refused by the kernel because someone
    /// committed in between: then apply the whole ruleset (which reads
    /// again).
    pub fn update(&mut self, update: &PortUpdate) -> Result<Option<Changes>, NetlinkError> {
        let Some(known) = self.known.as_mut() else {
            return Ok(None);
        };
        // The bridge table always (its summary is the answer), the inet
        // table when its whitelists change.
        let families: Vec<Family> = [Family::Inet, Family::Bridge]
            .into_iter()
            .filter(|f| *f == Family::Bridge || !update.changes(*f).is_empty())
            .collect();
        let mut at = Vec::with_capacity(families.len());
        for family in &families {
            let committed = known
                .committed
                .iter()
                .any(|(f, n)| f == family && *n == update.table);
            let found = known.tables.iter().position(|t| {
                t.as_ref().is_some_and(|t| {
                    t.family == *family && t.name == update.table && update.fits(t)
                })
            });
            match found {
                Some(i) if committed => at.push(i),
                _ => return Ok(None),
            }
        }
        let tables = || at.iter().filter_map(|i| known.tables[*i].as_ref());
        let summaries: Vec<TableSummary> = tables().map(summary_of).collect();
        if update.is_empty() {
            return Ok(Some(
                summaries
                    .into_iter()
                    .map(|s| (s, Change::Unchanged))
                    .collect(),
            ));
        }
        let revoked = Revoked {
            addrs: update.revoked(),
            subnets: tables().flat_map(subnets_of).collect(),
        };
        // An address given again (to a port or to the whitelist): its old
        // connections go first.
        if self.deferred.len() > 0 {
            let given = addresses(
                [Family::Bridge, Family::Inet]
                    .into_iter()
                    .flat_map(|f| update.changes(f))
                    .filter(|c| holds(c.set))
                    .flat_map(|c| &c.added),
            );
            let claimed = self.deferred.claimed(|a| given.contains(a));
            self.deferred.cut_or_keep(claimed, &mut self.socket)?;
        }
        // (Not `first_seq`: `known` borrows the rest of `self`.)
        let mut batch = Batch::with_generation(self.socket.next_seq(SEQ_PER_BATCH), known.genid);
        for table in tables() {
            for change in update.changes(table.family) {
                let Some(set) = table.set(change.set) else {
                    continue;
                };
                if !change.removed.is_empty() {
                    encode::delete_elements(&mut batch, table, set, &change.removed);
                }
                if !change.added.is_empty() {
                    encode::add_elements(&mut batch, table, set, &change.added, None);
                }
            }
        }
        match self.socket.send(&batch.finish()) {
            Ok(()) => {
                let mut changes = Vec::with_capacity(at.len());
                for (i, summary) in at.iter().zip(summaries) {
                    let Some(table) = known.tables[*i].as_mut() else {
                        continue;
                    };
                    update.apply_to(table);
                    let (added, removed) = update.counts_in(table.family);
                    let change = if added + removed == 0 {
                        Change::Unchanged
                    } else {
                        Change::Elements { added, removed }
                    };
                    changes.push((summary, change));
                }
                known.genid = known.genid.wrapping_add(1);
                let held = if revoked.addrs.is_empty() {
                    Default::default()
                } else {
                    held_in(at.iter().filter_map(|i| known.tables[*i].as_ref()))
                };
                let now = self.deferred.after(revoked, |a| held.contains(a));
                self.deferred.cut_or_keep(now, &mut self.socket)?;
                Ok(Some(changes))
            }
            // Someone committed in between: what is known is stale, and
            // the whole ruleset is applied from a fresh read.
            Err(e) if e.is_generation_changed() => {
                self.known = None;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// From now on, put off cutting the connections of a whitelisted
    /// address that left while nobody holds it (see the `cuts` module):
    /// they are cut before a transaction gives the address to a port or
    /// to the whitelist again, or by [`cut_pending`](Self::cut_pending),
    /// in one walk of the conntrack table for every address waiting.
    /// Meant for a daemon, where each proxy leaving would otherwise cost a
    /// walk of its own. Only with flow sets: where the bridge layer
    /// accepts by conntrack state ([`Tracking::Conntrack`]), stale entries
    /// could still carry frames between ports, and cuts stay immediate.
    pub fn defer_cuts(&mut self) {
        if self.bridge_tracking() == Tracking::FlowSets {
            self.deferred.enable();
        }
    }

    /// How many addresses wait for their connections to be cut.
    pub fn pending_cuts(&self) -> usize {
        self.deferred.len()
    }

    /// How many times the conntrack table was walked to cut connections.
    pub fn conntrack_walks(&self) -> u64 {
        self.deferred.walks()
    }

    /// Cut every connection put off by [`defer_cuts`](Self::defer_cuts);
    /// returns how many were cut. When the cut fails, they wait on.
    pub fn cut_pending(&mut self) -> Result<usize, NetlinkError> {
        let all = self.deferred.take();
        self.deferred.cut_or_keep(all, &mut self.socket)
    }

    /// Delete the given tables in one transaction.
    pub fn delete_tables(&mut self, tables: &[(Family, String)]) -> Result<(), NetlinkError> {
        self.known = None;
        if tables.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new(self.first_seq());
        for (family, name) in tables {
            encode::delete_table(&mut batch, *family, name);
        }
        self.socket.send(&batch.finish())
    }

    /// Reserve sequence numbers for one batch (see [`SEQ_PER_BATCH`]).
    fn first_seq(&mut self) -> u32 {
        self.socket.next_seq(SEQ_PER_BATCH)
    }
}
