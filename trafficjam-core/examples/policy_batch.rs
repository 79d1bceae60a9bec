//! Build a policy, print the nft text of its ruleset and the NFNETLINK
//! batch that would install it. No kernel, no privileges needed:
//!
//! ```text
//! cargo run -p trafficjam-core --example policy_batch
//! ```

use trafficjam_core::wire::{encode, Batch};
use trafficjam_core::{text, Allowed, InstanceId, Policy, Port, Role};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A bridge with a proxy and a backend: the proxy's addresses join the
    // whitelist, and each port may send only as its own MAC and addresses.
    let port = |name: &str, role, last: u8| -> Result<Port, std::net::AddrParseError> {
        Ok(Port {
            name: name.to_string(),
            role,
            mac: [0x02, 0x42, 0xac, 0x17, 0x00, last],
            addrs: vec![
                format!("172.23.0.{last}").parse()?,
                format!("fd00:23::{last}").parse()?,
            ],
        })
    };
    let policy = Policy::new(
        InstanceId::new("example")?,
        ["172.23.0.0/16".parse()?, "fd00:23::/64".parse()?],
        [],
        false,
    )?
    .with_bridges(["br-example".to_string()])?
    .with_ports([
        port("veth-proxy", Role::Proxy, 2)?,
        port("veth-app", Role::Backend, 3)?,
        port("veth-db", Role::Backend, 4)?,
    ])?
    // Exceptions: the app may reach the database on 5432/tcp; every
    // container may reach the proxy on 8443/tcp and the host on 53/udp.
    .with_allowed([Allowed {
        from: "veth-app".into(),
        to: "veth-db".into(),
        services: vec!["5432/tcp".parse()?],
    }])?
    .with_proxy_services(["8443/tcp".parse()?])
    .with_host_services(["53/udp".parse()?]);
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
