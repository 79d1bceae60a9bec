//! `trafficjam plan`: print the ruleset as nft text, touch nothing.

use trafficjam_core::text;

use super::policy;
use crate::cli::PolicyArgs;
use crate::error::CliError;

/// Print the tables `apply` would install.
pub fn run(args: &PolicyArgs) -> Result<(), CliError> {
    let policy = policy(args)?;
    for table in &policy.ruleset().tables {
        print!("{}", text::table(table));
    }
    Ok(())
}
