//! Any sequence of bytes fed to the table-dump decoder as kernel replies
//! must give a table, `None` or a `DecodeError`: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trafficjam_core::model::Family;
use trafficjam_core::wire::TableDump;

fuzz_target!(|data: &[u8]| {
    // Split the input into messages the way a netlink socket would: each
    // starts with its u32 length (native endian). Lengths are trusted only
    // as far as the buffer goes, to also feed truncated messages.
    // Both families, under the names of the seeds (the inet table of a
    // default instance, the tables of the golden `ruleset_ports` policy).
    let mut dumps = [
        TableDump::new(Family::Inet, "trafficjam-default"),
        TableDump::new(Family::Inet, "trafficjam-example"),
        TableDump::new(Family::Bridge, "trafficjam-example"),
    ];
    let mut rest = data;
    while rest.len() >= 4 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let len = len.clamp(4, rest.len());
        for dump in &mut dumps {
            let _ = dump.add_message(&rest[..len]);
        }
        rest = &rest[len..];
    }
    let mut tables = Vec::new();
    for dump in dumps {
        let _ = dump.set_names();
        if let Ok(Some(table)) = dump.finish() {
            let _ = trafficjam_core::text::table(&table);
            tables.push(table);
        }
    }
    let _ = trafficjam_core::Enforced::from_tables(&tables);
});
