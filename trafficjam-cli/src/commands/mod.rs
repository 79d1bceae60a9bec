//! One module per command.

pub mod apply;
pub mod clear;
pub mod plan;
pub mod status;

use trafficjam_core::{InstanceId, Policy};

use crate::cli::PolicyArgs;
use crate::error::CliError;

/// The validated policy of `apply`/`plan` arguments.
pub fn policy(args: &PolicyArgs) -> Result<Policy, CliError> {
    let instance = InstanceId::new(&args.instance)?;
    Ok(Policy::new(
        instance,
        args.subnets.iter().copied(),
        args.whitelist.iter().copied(),
        args.allow_host_traffic,
    )?)
}
