//! Build a policy, print the nft text of its ruleset and the NFNETLINK
//! batch that would install it. No kernel, no privileges needed:
//!
//! ```text
//! cargo run -p trafficjam-core --example policy_batch
//! ```

use trafficjam_core::wire::{encode, Batch};
use trafficjam_core::{text, InstanceId, Policy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Policy::new(
        InstanceId::new("example")?,
        ["172.23.0.0/16".parse()?, "fd00:23::/64".parse()?],
        ["172.23.0.2".parse()?, "fd00:23::2".parse()?],
        false,
    )?;
    let ruleset = policy.ruleset();

    // 1. What a person reads: the ruleset as nft syntax.
    for table in &ruleset.tables {
        print!("{}", text::table(table));
    }

    // 2. What the kernel receives: one batch, all or nothing.
    let mut batch = Batch::new(1);
    for table in &ruleset.tables {
        encode::create_table(&mut batch, table);
    }
    let tx = batch.finish();
    println!(
        "\n# {} messages, {} bytes",
        tx.entries().len(),
        tx.bytes().len()
    );
    for entry in tx.entries() {
        println!("# seq {:>3}: {}", entry.seq, entry.object);
    }
    for line in tx.bytes().chunks(16) {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        println!("{}", hex.join(" "));
    }
    Ok(())
}
