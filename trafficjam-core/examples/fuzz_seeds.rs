//! Write seed inputs for the fuzz targets: the messages of a real batch,
//! which have the same layout as the kernel's dump replies.
//!
//! ```text
//! cargo run -p trafficjam-core --example fuzz_seeds -- fuzz/seeds
//! ```

use std::path::PathBuf;

use trafficjam_core::wire::{encode, Batch};
use trafficjam_core::{InstanceId, Policy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds".into()),
    );
    let policy = Policy::new(
        InstanceId::default(),
        ["10.77.1.0/24".parse()?, "fd77:1::/64".parse()?],
        ["10.77.1.10".parse()?, "fd77:1::10".parse()?],
        false,
    )?;
    let mut batch = Batch::new(1);
    encode::create_table(&mut batch, &policy.ruleset().tables[0]);
    let tx = batch.finish();
    std::fs::create_dir_all(dir.join("table_dump"))?;
    std::fs::create_dir_all(dir.join("table_summary"))?;
    std::fs::write(dir.join("table_dump/whole_table"), tx.bytes())?;
    let entries = tx.entries();
    for (i, e) in entries.iter().enumerate() {
        let end = entries.get(i + 1).map_or(tx.bytes().len(), |n| n.offset);
        let msg = &tx.bytes()[e.offset..end];
        std::fs::write(dir.join(format!("table_dump/msg{i:02}")), msg)?;
        if i == 0 {
            std::fs::write(dir.join("table_summary/table"), msg)?;
        }
    }
    println!("wrote {} seeds to {}", entries.len() + 2, dir.display());
    Ok(())
}
