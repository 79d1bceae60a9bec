//! `trafficjam clear`: remove trafficjam's tables, nothing else.

use trafficjam_core::InstanceId;

use crate::cli::ClearArgs;
use crate::error::CliError;
use crate::firewall::Firewall;

/// Delete the instance's tables (or every trafficjam table) in one
/// transaction. Clearing what is not there is not an error.
pub fn run(args: &ClearArgs) -> Result<(), CliError> {
    let instance = match (&args.network, args.all) {
        (_, true) => None,
        (Some(network), false) => Some(super::instance_for(None, network, false)?),
        (None, false) => Some(InstanceId::new(&args.instance)?),
    };
    let mut fw = Firewall::open(args.target.netns.as_deref())?;
    let tables: Vec<_> = fw
        .list_own_tables()?
        .into_iter()
        .filter(|(_, name)| instance.as_ref().is_none_or(|i| *name == i.table_name()))
        .collect();
    fw.delete_tables(&tables)?;
    if tables.is_empty() {
        println!("trafficjam: nothing to clear");
    }
    for (family, name) in &tables {
        println!("trafficjam: removed table {family} {name}");
    }
    Ok(())
}
