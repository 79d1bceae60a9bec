//! Isolate container bridges as `trafficjam-cni` does: two bridges, one
//! `isolated`, one `proxy-only` with a whitelisted proxy, compiled into
//! the tables that enforce them, printed as nft text. No kernel needed:
//!
//! ```text
//! cargo run -p trafficjam-core --example bridge_isolation
//! ```

use trafficjam_core::isolation::{Bridge, BridgeIsolation, IngressPolicy};
use trafficjam_core::text;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let isolation = BridgeIsolation::new([
        Bridge {
            name: "cni-jobs".into(),
            ingress: IngressPolicy::Isolated,
            allow_host_traffic: false,
            subnets: vec!["10.88.1.0/24".parse()?],
            whitelist: vec![],
            ports: vec!["veth1a".into(), "veth1b".into()],
            whitelist_ports: vec![],
        },
        Bridge {
            name: "cni-web".into(),
            ingress: IngressPolicy::ProxyOnly,
            allow_host_traffic: false,
            subnets: vec!["10.88.2.0/24".parse()?, "fd88:2::/64".parse()?],
            whitelist: vec!["10.88.2.2".parse()?, "fd88:2::2".parse()?],
            ports: vec!["veth2a".into(), "veth2b".into()],
            whitelist_ports: vec!["veth2a".into()],
        },
    ])?;
    for table in &isolation.ruleset().tables {
        print!("{}", text::table(table));
    }
    Ok(())
}
