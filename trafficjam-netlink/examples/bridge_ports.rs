//! List the ports of a bridge and the MAC address plugged into each (the
//! veth peer inside a container's namespace). Needs CAP_NET_ADMIN.
//!
//! ```text
//! sudo cargo run -p trafficjam-netlink --example bridge_ports -- docker0
//! ```

use trafficjam_netlink::RouteSocket;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bridge = std::env::args().nth(1).unwrap_or_else(|| "docker0".into());
    let mut socket = RouteSocket::open_in(None)?;
    for port in socket.bridge_ports(&bridge)? {
        let mac = port.peer_mac.map_or("?".to_string(), |m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        });
        println!("{bridge} port {} -> {mac}", port.name);
    }
    Ok(())
}
