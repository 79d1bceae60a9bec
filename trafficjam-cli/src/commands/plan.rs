//! `trafficjam plan`: print the ruleset as nft text, touch nothing.

use trafficjam_core::{text, Policy};

use super::{docker_policies, runtime, static_policy};
use crate::cli::PolicyArgs;
use crate::docker::DockerClient;
use crate::error::CliError;

/// Print the tables `apply` would install.
pub fn run(args: &PolicyArgs) -> Result<(), CliError> {
    let policies: Vec<Policy> = if args.networks.is_empty() {
        vec![static_policy(args)?]
    } else {
        runtime().block_on(async {
            let client = DockerClient::connect().await?;
            let found = docker_policies(&client, args).await?;
            Ok::<_, CliError>(found.into_iter().map(|p| p.policy).collect())
        })?
    };
    for policy in &policies {
        for table in &policy.ruleset().tables {
            print!("{}", text::table(table));
        }
    }
    Ok(())
}
