//! `trafficjam apply`: install or update the policy in one transaction.

use trafficjam_core::wire::Change;

use super::policy;
use crate::cli::PolicyArgs;
use crate::error::CliError;
use crate::firewall::Firewall;

/// Validate, then apply; prints one line per table saying what changed.
pub fn run(args: &PolicyArgs) -> Result<(), CliError> {
    // Validate everything before the kernel is touched.
    let policy = policy(args)?;
    let mut fw = Firewall::open(args.target.netns.as_deref())?;
    for (table, change) in fw.apply(&policy.ruleset())? {
        let what = match change {
            Change::Unchanged => "already enforced, nothing changed".to_string(),
            Change::Create => "created".to_string(),
            Change::Replace => "replaced (policy changed)".to_string(),
            Change::Elements { added, removed } => {
                format!("updated in place: +{added} -{removed} address(es)")
            }
        };
        println!(
            "trafficjam: table {} {}: {what}; {} subnet(s), {} whitelisted, host traffic {}",
            table.family,
            table.name,
            policy.subnets().len(),
            policy.whitelist().len(),
            if policy.allow_host_traffic() {
                "allowed"
            } else {
                "blocked"
            }
        );
    }
    Ok(())
}
