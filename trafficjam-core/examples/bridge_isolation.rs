//! Isolate container bridges as `trafficjam-cni` does: two bridges, one
//! `isolated`, one `proxy-only` with a whitelisted proxy, compiled into
//! the tables that enforce them, printed as nft text. No kernel needed:
//!
//! ```text
//! cargo run -p trafficjam-core --example bridge_isolation
//! ```

use std::net::IpAddr;

use trafficjam_core::isolation::{Bridge, BridgeIsolation, Exceptions, IngressPolicy};
use trafficjam_core::{text, Port, Role};

/// A container's host-side port, its MAC and addresses (what the CNI
/// `bridge` plugin reports in `prevResult`).
fn port(
    name: &str,
    role: Role,
    mac_last: u8,
    addrs: &[&str],
) -> Result<Port, std::net::AddrParseError> {
    Ok(Port {
        name: name.into(),
        role,
        mac: [0x02, 0x88, 0, 0, 0, mac_last],
        addrs: addrs
            .iter()
            .map(|a| a.parse())
            .collect::<Result<Vec<IpAddr>, _>>()?,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let isolation = BridgeIsolation::new([
        Bridge {
            name: "cni-jobs".into(),
            ingress: IngressPolicy::Isolated,
            allow_host_traffic: false,
            subnets: vec!["10.88.1.0/24".parse()?],
            whitelist: vec![],
            ports: vec![
                port("veth1a", Role::Backend, 0x1a, &["10.88.1.10"])?,
                port("veth1b", Role::Backend, 0x1b, &["10.88.1.11"])?,
            ],
            exceptions: Default::default(),
        },
        Bridge {
            name: "cni-web".into(),
            ingress: IngressPolicy::ProxyOnly,
            allow_host_traffic: false,
            subnets: vec!["10.88.2.0/24".parse()?, "fd88:2::/64".parse()?],
            whitelist: vec!["10.88.2.2".parse()?, "fd88:2::2".parse()?],
            ports: vec![
                port("veth2a", Role::Proxy, 0x2a, &["10.88.2.2", "fd88:2::2"])?,
                port("veth2b", Role::Backend, 0x2b, &["10.88.2.3", "fd88:2::3"])?,
            ],
            // The web container may reach the proxy's auth endpoint.
            exceptions: Exceptions {
                proxy_services: vec!["9000/tcp".parse()?],
                ..Default::default()
            },
        },
    ])?;
    for table in &isolation.ruleset().tables {
        print!("{}", text::table(table));
    }
    Ok(())
}
