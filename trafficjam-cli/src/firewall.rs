//! The kernel side of the commands: [`trafficjam_netlink::Firewall`] with
//! the CLI's errors, and a clear one for a `--netns` that does not exist.

use std::path::Path;

use trafficjam_core::model::{Family, Table};
use trafficjam_core::Ruleset;
use trafficjam_netlink::Changes;

use crate::error::CliError;

/// A netfilter socket in the namespace trafficjam acts on.
pub struct Firewall(trafficjam_netlink::Firewall);

impl Firewall {
    /// Open the socket, inside `netns` when given.
    pub fn open(netns: Option<&Path>) -> Result<Firewall, CliError> {
        if let Some(path) = netns {
            if !path.exists() {
                return Err(CliError::NoNamespace(path.to_path_buf()));
            }
        }
        Ok(Firewall(trafficjam_netlink::Firewall::open_in(netns)?))
    }

    /// Make the kernel enforce `policy`, with the flow tracking this
    /// kernel supports; returns what changed for each table.
    pub fn enforce(&mut self, policy: &trafficjam_core::Policy) -> Result<Changes, CliError> {
        let tracking = self.bridge_tracking();
        // A daemon's policies already say (see `run`): not copied then.
        let ruleset = if policy.tracking() == tracking {
            policy.ruleset()
        } else {
            policy.clone().with_tracking(tracking).ruleset()
        };
        self.apply(ruleset)
    }

    /// How the bridge layer can track flows on this kernel (see
    /// [`trafficjam_netlink::Firewall::bridge_tracking`]).
    pub fn bridge_tracking(&mut self) -> trafficjam_core::Tracking {
        self.0.bridge_tracking()
    }

    /// Read one table back from the kernel; `None` when it does not exist.
    pub fn read_table(&mut self, family: Family, name: &str) -> Result<Option<Table>, CliError> {
        Ok(self.0.read_table(family, name)?)
    }

    /// The trafficjam tables the kernel has: (family, name).
    pub fn list_own_tables(&mut self) -> Result<Vec<(Family, String)>, CliError> {
        Ok(self.0.list_own_tables()?)
    }

    /// Every trafficjam table the kernel has, read whole.
    pub fn read_own_tables(&mut self) -> Result<Vec<Table>, CliError> {
        Ok(self.0.read_own_tables()?)
    }

    /// Make the kernel enforce `ruleset` in one transaction (see
    /// [`trafficjam_netlink::Firewall::apply`]).
    pub fn apply(&mut self, ruleset: Ruleset) -> Result<Changes, CliError> {
        Ok(self.0.apply(ruleset)?)
    }

    /// Plan the next change from a fresh read of the kernel (see
    /// [`trafficjam_netlink::Firewall::forget`]).
    pub fn forget(&mut self) {
        self.0.forget();
    }

    /// The port id of this socket's own change notifications.
    pub fn portid(&self) -> u32 {
        self.0.portid()
    }

    /// How many times the ruleset was read to plan a change.
    pub fn reads(&self) -> u64 {
        self.0.reads()
    }

    /// Delete the given tables in one transaction.
    pub fn delete_tables(&mut self, tables: &[(Family, String)]) -> Result<(), CliError> {
        Ok(self.0.delete_tables(tables)?)
    }
}
