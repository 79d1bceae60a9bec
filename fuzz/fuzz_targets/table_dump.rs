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
    let mut dump = TableDump::new(Family::Inet, "trafficjam-default");
    let mut rest = data;
    while rest.len() >= 4 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let len = len.clamp(4, rest.len());
        let _ = dump.add_message(&rest[..len]);
        rest = &rest[len..];
    }
    let _ = dump.set_names();
    if let Ok(Some(table)) = dump.finish() {
        let _ = trafficjam_core::text::table(&table);
        let _ = trafficjam_core::Enforced::from_tables(std::slice::from_ref(&table));
    }
});
