//! `trafficjam plan`: print the ruleset as nft text, touch nothing.

use trafficjam_core::text;

use super::policies;
use crate::cli::PolicyArgs;
use crate::error::CliError;

/// Print the tables `apply` would install. With Docker, a comment before
/// them names the flows the allow labels open by container (the sets hold
/// interface names and addresses only); `nft -f` reads the output as is.
pub fn run(args: &PolicyArgs) -> Result<(), CliError> {
    for found in policies(args)? {
        if let Some(d) = &found.discovery {
            println!("# network {}:", d.network);
            let allowed = d.allowed();
            if allowed.is_empty() {
                println!("#   no flows allowed by labels");
            }
            for (_, names) in allowed {
                println!("#   allowed {names}");
            }
            for problem in d.allow_problems() {
                println!("#   ignored allow labels of {problem}");
            }
        }
        for table in &found.policy.ruleset().tables {
            print!("{}", text::table(table));
        }
    }
    Ok(())
}
