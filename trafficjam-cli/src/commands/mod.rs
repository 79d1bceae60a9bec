//! One module per command, and what they share: turning the options into
//! policies, from the command line or from Docker.

pub mod apply;
pub mod check;
pub mod clear;
pub mod plan;
pub mod run;
pub mod status;

use trafficjam_core::isolation::BridgeIsolation;
use trafficjam_core::{InstanceId, Policy, Port, Role};
use trafficjam_netlink::{BridgePort, RouteSocket};

use crate::cli::PolicyArgs;
use crate::docker::{discover::parse_filters, Discovery, DockerClient};
use crate::error::CliError;

/// The instance of static-mode (`--subnet`) arguments.
pub fn static_instance(args: &PolicyArgs) -> Result<InstanceId, CliError> {
    own_instance(args.instance.as_deref().unwrap_or("default"))
}

/// A static-mode policy and what was found on the way, for the log.
pub struct StaticPolicy {
    /// The policy to enforce.
    pub policy: Policy,
    /// What trafficjam chose or assumed (the bridge, uplinks).
    pub notes: Vec<String>,
    /// The bridge's interface index, when it exists.
    pub bridge_index: Option<u32>,
}

/// The validated policy of static-mode (`--subnet`) arguments: the bridge
/// (given, or the interface holding an address of the subnets) and its
/// ports, read from the kernel in the namespace where the rules go.
pub fn static_policy(args: &PolicyArgs) -> Result<StaticPolicy, CliError> {
    let base = Policy::new(
        static_instance(args)?,
        args.subnets.iter().copied(),
        args.whitelist.iter().copied(),
        args.allow_host_traffic,
    )?;
    if let Some(path) = args.target.netns.as_deref().filter(|p| !p.exists()) {
        return Err(CliError::NoNamespace(path.to_path_buf()));
    }
    let mut route = RouteSocket::open_in(args.target.netns.as_deref())?;
    let mut notes = Vec::new();
    let bridge = match &args.bridge {
        Some(b) => b.clone(),
        None => {
            let found = route.interfaces_in(base.subnets())?;
            match found.as_slice() {
                [one] => {
                    notes.push(format!(
                        "managing bridge {one} (it holds an address of the subnets; --bridge chooses another)"
                    ));
                    one.clone()
                }
                [] => return Err(CliError::NoBridge(list(base.subnets()))),
                many => return Err(CliError::AmbiguousBridge(many.join(", "))),
            }
        }
    };
    let read = route.bridge(&bridge)?;
    let bridge_index = read.as_ref().map(|(i, _)| *i);
    let found = read.map(|(_, p)| p).unwrap_or_default();
    let (ports, uplinks) = static_ports(args, &bridge, &found)?;
    for u in &uplinks {
        notes.push(format!(
            "port {u} of {bridge} is not a veth: treated as an uplink (traffic through it is outside the host and left alone; --port {u}=MAC,IP isolates it as a container)"
        ));
    }
    let allowed = static_allowed(args, &bridge, &ports)?;
    let policy = base
        .with_bridges([bridge])?
        .with_ports(ports)?
        .with_uplinks(uplinks)?
        .with_allowed(allowed)?;
    Ok(StaticPolicy {
        policy: with_options(policy, args),
        notes,
        bridge_index,
    })
}

/// The container ports and uplinks of a static-mode bridge: `--port` where
/// given, else what the kernel says of each veth's other end; ports that
/// are not veths are uplinks. A port is whitelisted when it is named by
/// `--whitelist-port` or holds a `--whitelist-ip`.
fn static_ports(
    args: &PolicyArgs,
    bridge: &str,
    found: &[BridgePort],
) -> Result<(Vec<Port>, Vec<String>), CliError> {
    let role = |name: &str, addrs: &[std::net::IpAddr]| {
        if args.whitelist_ports.iter().any(|p| p == name)
            || addrs.iter().any(|a| args.whitelist.contains(a))
        {
            Role::Proxy
        } else {
            Role::Backend
        }
    };
    let mut ports: Vec<Port> = args
        .ports
        .iter()
        .map(|p| Port {
            name: p.name.clone(),
            role: role(&p.name, &p.addrs),
            mac: p.mac,
            addrs: p.addrs.clone(),
        })
        .collect();
    let mut uplinks = Vec::new();
    for f in found
        .iter()
        .filter(|f| !args.ports.iter().any(|p| p.name == f.name))
    {
        match (f.peer_mac, f.has_peer) {
            (Some(mac), _) => ports.push(Port {
                name: f.name.clone(),
                role: role(&f.name, &f.peer_addrs),
                mac,
                addrs: f.peer_addrs.clone(),
            }),
            (None, true) => {
                return Err(CliError::UnreadablePort(f.name.clone(), bridge.to_string()))
            }
            (None, false) => uplinks.push(f.name.clone()),
        }
    }
    if let Some(p) = args
        .whitelist_ports
        .iter()
        .find(|p| !ports.iter().any(|q| q.name == **p))
    {
        return Err(CliError::UnknownPort(p.clone(), bridge.to_string()));
    }
    Ok((ports, uplinks))
}

/// `--allow FROM->TO[:PORTS]`, from addresses to the ports holding them.
fn static_allowed(
    args: &PolicyArgs,
    bridge: &str,
    ports: &[Port],
) -> Result<Vec<trafficjam_core::Allowed>, CliError> {
    let port_of = |ip: &std::net::IpAddr| {
        ports
            .iter()
            .find(|p| p.addrs.contains(ip))
            .map(|p| p.name.clone())
            .ok_or_else(|| CliError::UnknownAddress(*ip, bridge.to_string()))
    };
    args.allow
        .iter()
        .map(|a| {
            Ok(trafficjam_core::Allowed {
                from: port_of(&a.from)?,
                to: port_of(&a.to)?,
                services: a.services.clone(),
            })
        })
        .collect()
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The policy with what the options add in either mode: the services
/// opened to the proxy and on the host, and the blocked-connection log.
pub fn with_options(policy: Policy, args: &PolicyArgs) -> Policy {
    let policy = policy
        .with_proxy_services(args.allow_to_proxy.iter().copied())
        .with_host_services(args.allow_host_port.iter().copied());
    match args.log_blocked {
        Some(rate) => policy.with_log_blocked(rate),
        None => policy,
    }
}

/// The policy enforcing a Docker network's discovery.
pub fn docker_policy(
    args: &PolicyArgs,
    discovery: &Discovery,
    network: &str,
) -> Result<Policy, CliError> {
    docker_policy_allowing(args, discovery, network, &discovery.allowed())
}

/// [`docker_policy`] with the allow labels' flows already found
/// ([`Discovery::allowed`]).
pub fn docker_policy_allowing(
    args: &PolicyArgs,
    discovery: &Discovery,
    network: &str,
    allowed: &[(trafficjam_core::Allowed, String)],
) -> Result<Policy, CliError> {
    let instance = instance_for(args.instance.as_deref(), network, args.networks.len() > 1)?;
    let policy = discovery.policy_allowing(instance, args.allow_host_traffic, allowed)?;
    Ok(with_options(policy, args))
}

/// The instance owning a Docker network's rules: `--instance` when one
/// network is managed, `<instance>-<network>` when several are, and the
/// network's name (made a valid id) when no instance is given.
pub fn instance_for(
    explicit: Option<&str>,
    network: &str,
    several: bool,
) -> Result<InstanceId, CliError> {
    let id = match (explicit, several) {
        (Some(i), false) => i.to_string(),
        (Some(i), true) => format!("{i}-{}", sanitize(network)),
        (None, _) => sanitize(network),
    };
    own_instance(&shorten(&id))
}

/// A valid instance id that is not one trafficjam-cni names its tables
/// with (`cni`, `cni-*`): it would remove them as left over, or they it.
fn own_instance(id: &str) -> Result<InstanceId, CliError> {
    let instance = InstanceId::new(id)?;
    if BridgeIsolation::owns(&instance.table_name()) {
        return Err(CliError::ReservedInstance(instance.to_string()));
    }
    Ok(instance)
}

/// An id that fits [`InstanceId::MAX_LEN`]: a longer one keeps its start
/// and ends in a hash of the whole, so two long network names that share a
/// prefix still get tables of their own.
fn shorten(id: &str) -> String {
    if id.len() <= InstanceId::MAX_LEN {
        return id.to_string();
    }
    // FNV-1a: stable across versions and platforms, unlike std's hasher.
    let hash = id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let keep: String = id.chars().take(InstanceId::MAX_LEN - 9).collect();
    format!("{keep}-{hash:08x}")
}

fn sanitize(name: &str) -> String {
    let s = InstanceId::sanitize(name);
    if s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        s
    } else {
        format!("n{s}")
    }
}

/// One Docker network's discovery and the policy that isolates it.
pub struct DockerPolicy {
    /// What Docker reported.
    pub discovery: Discovery,
    /// The policy built from it.
    pub policy: Policy,
}

/// Discover every `--network` and build its policy.
pub async fn docker_policies(
    client: &DockerClient,
    args: &PolicyArgs,
) -> Result<Vec<DockerPolicy>, CliError> {
    let filters = parse_filters(&args.whitelist_filters)?;
    let known = crate::docker::containers::Containers::load(client).await?;
    let mut out = Vec::new();
    for network in &args.networks {
        let mut discovery = client.discover(network, &filters, Some(&known)).await?;
        bind_ports(&mut discovery, args.target.netns.as_deref())?;
        for p in discovery.allow_problems() {
            eprintln!("trafficjam: network {network}: ignoring the allow labels of {p}");
        }
        let policy = docker_policy(args, &discovery, network)?;
        out.push(DockerPolicy { discovery, policy });
    }
    Ok(out)
}

/// Find every container's bridge port (by the MAC Docker gave it), in the
/// namespace where the rules go (the host's, normally). A container whose
/// port is not found is not bound (see [`Discovery::unbound`]). When the
/// bridge cannot be read at all, that is an error: a policy without the
/// ports would not isolate them.
pub fn bind_ports(
    discovery: &mut Discovery,
    netns: Option<&std::path::Path>,
) -> Result<(), CliError> {
    let mut route = RouteSocket::open_in(netns)?;
    let cache = crate::docker::ports::PortCache::read(&mut route, &discovery.bridge)?;
    discovery.bridge_index = cache.index;
    discovery.find_ports(cache.ports());
    Ok(())
}

/// The policies `apply` and `plan` act on: from the command line, or one
/// per `--network` from Docker (with what Docker reported).
pub fn policies(args: &PolicyArgs) -> Result<Vec<SourcedPolicy>, CliError> {
    if args.networks.is_empty() {
        let found = static_policy(args)?;
        for n in &found.notes {
            eprintln!("trafficjam: {n}");
        }
        return Ok(vec![SourcedPolicy {
            discovery: None,
            policy: found.policy,
        }]);
    }
    runtime().block_on(async {
        let client = DockerClient::connect().await?;
        let found = docker_policies(&client, args).await?;
        Ok(found
            .into_iter()
            .map(|p| SourcedPolicy {
                discovery: Some(p.discovery),
                policy: p.policy,
            })
            .collect())
    })
}

/// A policy, and the Docker discovery it came from (none in static mode).
pub struct SourcedPolicy {
    /// What Docker reported, in Docker mode.
    pub discovery: Option<Discovery>,
    /// The policy to enforce.
    pub policy: Policy,
}

/// A current-thread runtime for the Docker API calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime can always be built")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_for_networks_are_valid_and_distinct() {
        assert_eq!(
            instance_for(None, "traefik_public", false)
                .unwrap()
                .as_str(),
            "traefik_public"
        );
        assert_eq!(
            instance_for(None, "my.net", false).unwrap().as_str(),
            "my_net"
        );
        assert_eq!(instance_for(None, "_x", false).unwrap().as_str(), "n_x");
        assert_eq!(
            instance_for(Some("tj"), "web", false).unwrap().as_str(),
            "tj"
        );
        assert_eq!(
            instance_for(Some("tj"), "web", true).unwrap().as_str(),
            "tj-web"
        );
        let long = "a".repeat(64);
        assert_eq!(instance_for(None, &long, false).unwrap().as_str().len(), 32);
        // Two long names sharing their first 32 characters stay apart.
        let (a, b) = (format!("{long}-frontend"), format!("{long}-backend"));
        let (ia, ib) = (
            instance_for(None, &a, false).unwrap(),
            instance_for(None, &b, false).unwrap(),
        );
        assert_ne!(ia, ib);
        assert!(ia.as_str().starts_with(&"a".repeat(23)), "{ia}");
        assert_eq!(instance_for(None, &a, false).unwrap(), ia, "stable");
        // trafficjam-cni's names are refused, with a way out.
        for taken in ["cni", "cni-web"] {
            let e = instance_for(None, taken, false).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("--instance"), "{e}");
        }
        assert!(instance_for(Some("web"), "cni-web", false).is_ok());
        assert!(instance_for(None, "cnix", false).is_ok());
    }
}
