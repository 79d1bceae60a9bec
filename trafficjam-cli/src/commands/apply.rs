//! `trafficjam apply`: install or update the policy in one transaction.

use trafficjam_core::wire::Change;
use trafficjam_core::Policy;

use super::{docker_policies, runtime, static_policy};
use crate::cli::PolicyArgs;
use crate::docker::DockerClient;
use crate::error::CliError;
use crate::firewall::Firewall;

/// Validate, then apply; prints one line per table saying what changed.
pub fn run(args: &PolicyArgs) -> Result<(), CliError> {
    // Everything is validated (and Docker asked) before the kernel is
    // touched.
    let policies: Vec<Policy> = if args.networks.is_empty() {
        vec![static_policy(args)?]
    } else {
        runtime().block_on(async {
            let client = DockerClient::connect().await?;
            let found = docker_policies(&client, args).await?;
            for p in &found {
                for line in p.discovery.changes_since(None) {
                    println!("trafficjam: network {}: {line}", p.discovery.network);
                }
            }
            Ok::<_, CliError>(found.into_iter().map(|p| p.policy).collect())
        })?
    };
    let mut fw = Firewall::open(args.target.netns.as_deref())?;
    for policy in &policies {
        for (table, change) in fw.apply(&policy.ruleset())? {
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
            format!("updated in place: +{added} -{removed} address(es)")
        }
    }
}

/// "2 subnet(s), 1 whitelisted, host traffic blocked"
pub fn summary(policy: &Policy) -> String {
    format!(
        "{} subnet(s), {} whitelisted, host traffic {}",
        policy.subnets().len(),
        policy.whitelist().len(),
        if policy.allow_host_traffic() {
            "allowed"
        } else {
            "blocked"
        }
    )
}
