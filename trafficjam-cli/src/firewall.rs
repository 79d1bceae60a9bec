//! The kernel side of the commands: [`trafficjam_netlink::Firewall`] with
//! the CLI's errors, and a clear one for a `--netns` that does not exist.

use std::collections::HashMap;
use std::path::Path;

use trafficjam_core::model::{Family, Table};
use trafficjam_core::wire::{Change, TableSummary};
use trafficjam_core::{Policy, Ruleset, TABLE_COMMENT};
use trafficjam_netlink::Changes;

use crate::error::CliError;

/// A netfilter socket in the namespace trafficjam acts on.
pub struct Firewall {
    kernel: trafficjam_netlink::Firewall,
    /// The policy last made true through [`Firewall::enforce_owned`], by
    /// table name: the next one of that name may then be sent as the set
    /// elements its ports changed (see [`Policy::port_update`]).
    /// Forgotten whenever the tables are changed another way.
    enforced: HashMap<String, Policy>,
    /// Transactions sent as a port update.
    port_updates: u64,
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
            kernel: trafficjam_netlink::Firewall::open_in(netns)?,
            enforced: HashMap::new(),
            port_updates: 0,
        })
    }

    /// Make the kernel enforce `policy`, with the flow tracking this
    /// kernel supports; returns what changed for each table.
    pub fn enforce(&mut self, policy: &Policy) -> Result<Changes, CliError> {
        let tracking = self.bridge_tracking();
        // A daemon's policies already say (see `run`): not copied then.
        let ruleset = if policy.tracking() == tracking {
            policy.ruleset()
        } else {
            policy.clone().with_tracking(tracking).ruleset()
        };
        self.apply(ruleset)
    }

    /// [`enforce`](Self::enforce), keeping the policy: when the next one
    /// of these tables differs from it only in ports, ports nobody is
    /// bound to and whitelisted addresses (a daemon's usual event), only
    /// the elements that changed are computed and sent — nothing is
    /// compiled or compared whole. Anything else, or a kernel that changed
    /// in between, is applied whole.
    pub fn enforce_owned(&mut self, policy: Policy) -> Result<Changes, CliError> {
        let tracking = self.bridge_tracking();
        let policy = if policy.tracking() == tracking {
            policy
        } else {
            policy.with_tracking(tracking)
        };
        let name = policy.instance().table_name();
        let update = self
            .enforced
            .remove(&name)
            .and_then(|last| last.port_update(&policy));
        if let Some(update) = update {
            if let Some(mut changes) = self.kernel.update(&update)? {
                // The inet table is the same when its whitelists are: said
                // so, as a whole apply says it of every table.
                if !changes.iter().any(|(t, _)| t.family == Family::Inet) {
                    let inet = TableSummary {
                        family: Family::Inet,
                        name: name.clone(),
                        comment: Some(TABLE_COMMENT.to_string()),
                    };
                    changes.insert(0, (inet, Change::Unchanged));
                }
                self.enforced.insert(name, policy);
                if !update.is_empty() {
                    self.port_updates += 1;
                }
                return Ok(changes);
            }
        }
        let changes = self.kernel.apply(policy.ruleset())?;
        self.enforced.insert(name, policy);
        Ok(changes)
    }

    /// How the bridge layer can track flows on this kernel (see
    /// [`trafficjam_netlink::Firewall::bridge_tracking`]).
    pub fn bridge_tracking(&mut self) -> trafficjam_core::Tracking {
        self.kernel.bridge_tracking()
    }

    /// Read one table back from the kernel; `None` when it does not exist.
    pub fn read_table(&mut self, family: Family, name: &str) -> Result<Option<Table>, CliError> {
        Ok(self.kernel.read_table(family, name)?)
    }

    /// The trafficjam tables the kernel has: (family, name).
    pub fn list_own_tables(&mut self) -> Result<Vec<(Family, String)>, CliError> {
        Ok(self.kernel.list_own_tables()?)
    }

    /// Every trafficjam table the kernel has, read whole.
    pub fn read_own_tables(&mut self) -> Result<Vec<Table>, CliError> {
        Ok(self.kernel.read_own_tables()?)
    }

    /// Make the kernel enforce `ruleset` in one transaction (see
    /// [`trafficjam_netlink::Firewall::apply`]).
    pub fn apply(&mut self, ruleset: Ruleset) -> Result<Changes, CliError> {
        self.enforced.clear();
        Ok(self.kernel.apply(ruleset)?)
    }

    /// Plan the next change from a fresh read of the kernel (see
    /// [`trafficjam_netlink::Firewall::forget`]).
    pub fn forget(&mut self) {
        self.enforced.clear();
        self.kernel.forget();
    }

    /// The port id of this socket's own change notifications.
    pub fn portid(&self) -> u32 {
        self.kernel.portid()
    }

    /// Put off the connection cuts of proxies that left (see
    /// [`trafficjam_netlink::Firewall::defer_cuts`]).
    pub fn defer_cuts(&mut self) {
        self.kernel.defer_cuts();
    }

    /// How many addresses wait for their connections to be cut.
    pub fn pending_cuts(&self) -> usize {
        self.kernel.pending_cuts()
    }

    /// How many times the conntrack table was walked to cut connections.
    pub fn conntrack_walks(&self) -> u64 {
        self.kernel.conntrack_walks()
    }

    /// Cut every connection put off; how many were cut.
    pub fn cut_pending(&mut self) -> Result<usize, CliError> {
        Ok(self.kernel.cut_pending()?)
    }

    /// How many changes were sent as a port update (see
    /// [`enforce_owned`](Self::enforce_owned)).
    pub fn port_updates(&self) -> u64 {
        self.port_updates
    }

    /// How many times the ruleset was read to plan a change.
    pub fn reads(&self) -> u64 {
        self.kernel.reads()
    }

    /// Delete the given tables in one transaction.
    pub fn delete_tables(&mut self, tables: &[(Family, String)]) -> Result<(), CliError> {
        self.enforced.clear();
        Ok(self.kernel.delete_tables(tables)?)
    }
}
