//! One module per command, and what they share: turning the options into
//! policies, from the command line or from Docker.

pub mod apply;
pub mod check;
pub mod clear;
pub mod plan;
pub mod run;
pub mod status;

use trafficjam_core::isolation::BridgeIsolation;
use trafficjam_core::{InstanceId, Policy};

use crate::cli::PolicyArgs;
use crate::docker::{discover::parse_filters, Discovery, DockerClient};
use crate::error::CliError;

/// The validated policy of static-mode (`--subnet`) arguments.
pub fn static_policy(args: &PolicyArgs) -> Result<Policy, CliError> {
    let instance = own_instance(args.instance.as_deref().unwrap_or("default"))?;
    let policy = Policy::new(
        instance,
        args.subnets.iter().copied(),
        args.whitelist.iter().copied(),
        args.allow_host_traffic,
    )?
    .with_whitelist_ports(args.whitelist_ports.iter().cloned())?;
    Ok(with_log(policy, args))
}

/// The policy with the blocked-connection log the options ask for.
pub fn with_log(policy: Policy, args: &PolicyArgs) -> Policy {
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
    let instance = instance_for(args.instance.as_deref(), network, args.networks.len() > 1)?;
    let policy = discovery.policy(instance, args.allow_host_traffic)?;
    Ok(with_log(policy, args))
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
    let mut out = Vec::new();
    for network in &args.networks {
        let mut discovery = client.discover(network, &filters).await?;
        bind_ports(&mut discovery, args.target.netns.as_deref());
        let policy = docker_policy(args, &discovery, network)?;
        out.push(DockerPolicy { discovery, policy });
    }
    Ok(out)
}

/// Find the whitelisted containers' bridge ports, in the namespace where
/// the rules go (the host's, normally). If they cannot be read, nothing is
/// bound: isolation holds, only forged proxy addresses are not caught.
pub fn bind_ports(discovery: &mut Discovery, netns: Option<&std::path::Path>) {
    let ports = trafficjam_netlink::RouteSocket::open_in(netns)
        .and_then(|mut s| s.bridge_ports(&discovery.bridge))
        .unwrap_or_default();
    discovery.find_ports(&ports);
}

/// The policies `apply` and `plan` act on: from the command line, or one
/// per `--network` from Docker (with what Docker reported).
pub fn policies(args: &PolicyArgs) -> Result<Vec<SourcedPolicy>, CliError> {
    if args.networks.is_empty() {
        return Ok(vec![SourcedPolicy {
            discovery: None,
            policy: static_policy(args)?,
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
