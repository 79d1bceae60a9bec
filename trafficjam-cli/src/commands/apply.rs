//! `trafficjam apply`: install or update the policy in one transaction.

use trafficjam_core::wire::Change;
use trafficjam_core::Policy;

use super::policies;
use crate::cli::PolicyArgs;
use crate::error::CliError;
use crate::firewall::Firewall;

/// Validate, then apply; prints one line per table saying what changed.
pub fn run(args: &PolicyArgs) -> Result<(), CliError> {
    // Everything is validated (and Docker asked) before the kernel is
    // touched.
    let found = policies(args)?;
    for d in found.iter().filter_map(|p| p.discovery.as_ref()) {
        for line in d.changes_since(None) {
            println!("trafficjam: network {}: {line}", d.network);
        }
        for e in d.unbound() {
            eprintln!(
                "trafficjam: network {}: the bridge port of container {} was not found on {}; it is not bound",
                d.network, e.name, d.bridge
            );
        }
    }
    let mut fw = Firewall::open(args.target.netns.as_deref())?;
    for policy in found.iter().map(|p| &p.policy) {
        for (table, change) in fw.enforce(policy)? {
            println!(
                "trafficjam: table {} {}: {}; {}",
                table.family,
                table.name,
                describe(&change),
                summary(policy)
            );
        }
    }
    Ok(())
}

/// What a [`Change`] did, in words.
pub fn describe(change: &Change) -> String {
    match change {
        Change::Unchanged => "already enforced, nothing changed".to_string(),
        Change::Create => "created".to_string(),
        Change::Replace => "replaced (policy changed)".to_string(),
        Change::Elements { added, removed } => {
            format!("updated in place: +{added} -{removed} element(s)")
        }
    }
}

/// "2 subnet(s), 1 whitelisted, 3 port(s), host traffic blocked"
pub fn summary(policy: &Policy) -> String {
    format!(
        "{} subnet(s), {} whitelisted, {} port(s), host traffic {}",
        policy.subnets().len(),
        policy.whitelist().len(),
        policy.ports().len(),
        if policy.allow_host_traffic() {
            "allowed"
        } else {
            "blocked"
        }
    )
}
