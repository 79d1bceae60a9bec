//! `trafficjam plan`: print the ruleset as nft text, touch nothing.

use trafficjam_core::text;

use super::policies;
use crate::cli::PolicyArgs;
use crate::error::CliError;

/// Print the tables `apply` would install.
pub fn run(args: &PolicyArgs) -> Result<(), CliError> {
    for found in policies(args)? {
        for table in &found.policy.ruleset().tables {
            print!("{}", text::table(table));
        }
    }
    Ok(())
}
