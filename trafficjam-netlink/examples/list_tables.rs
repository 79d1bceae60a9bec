//! List the nftables tables of the current network namespace (or of the
//! namespace given as first argument), straight over NFNETLINK. Needs
//! CAP_NET_ADMIN.
//!
//! ```text
//! sudo cargo run -p trafficjam-netlink --example list_tables [/run/netns/NAME]
//! ```

use std::path::PathBuf;

use trafficjam_core::wire::request;
use trafficjam_netlink::NetfilterSocket;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let netns = std::env::args().nth(1).map(PathBuf::from);
    let mut socket = NetfilterSocket::open_in(netns.as_deref())?;
    for message in socket.request(&request::dump_tables())? {
        if let Some(t) = request::parse_table_summary(&message)? {
            let owner = if trafficjam_core::is_trafficjam_table(&t.name, t.comment.as_deref()) {
                "  (trafficjam)"
            } else {
                ""
            };
            println!("table {} {}{owner}", t.family, t.name);
        }
    }
    Ok(())
}
