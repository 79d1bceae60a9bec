//! `trafficjam status`: what the kernel enforces now, read back from it.

use trafficjam_core::{text, Enforced};

use crate::cli::StatusArgs;
use crate::error::CliError;
use crate::firewall::Firewall;

/// The JSON document `status --json` prints.
#[derive(serde::Serialize)]
struct Status {
    instances: Vec<Enforced>,
}

/// Print every trafficjam instance found in the kernel.
pub fn run(args: &StatusArgs) -> Result<(), CliError> {
    let mut fw = Firewall::open(args.target.netns.as_deref())?;
    let mut instances = Vec::new();
    let mut tables = Vec::new();
    for (family, name) in fw.list_own_tables()? {
        if let Some(table) = fw.read_table(family, &name)? {
            if let Some(e) = Enforced::from_table(&table) {
                instances.push(e);
                tables.push(table);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&Status { instances })?);
        return Ok(());
    }
    if instances.is_empty() {
        println!("trafficjam: no policy is enforced (no trafficjam table in the kernel)");
    }
    for (e, table) in instances.iter().zip(&tables) {
        println!("instance {} ({})", e.instance, e.table);
        println!("  subnets:       {}", join(&e.subnets));
        println!("  whitelisted:   {}", join(&e.whitelist));
        println!(
            "  host traffic:  {}",
            if e.allow_host_traffic {
                "allowed"
            } else {
                "blocked"
            }
        );
        println!("  enforcing at:  {}", e.layers.join(", "));
        for d in &e.drops {
            println!(
                "  dropped in {}: {} packets, {} bytes",
                d.chain, d.packets, d.bytes
            );
        }
        if !e.intact {
            println!("  WARNING: the table differs from what trafficjam installs (altered by someone else?); run `trafficjam apply` to restore it");
            print!("{}", text::table(table));
        }
    }
    Ok(())
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "(none)".to_string();
    }
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
