//! Swarm overlays in the Docker daemon: each managed overlay is enforced in
//! this node's namespace of it, which the Engine creates when the node's
//! first endpoint joins the network and removes after the last leaves;
//! the node's `docker_gwbridge` in the host's namespace; and the routing
//! mesh's `ingress_sbox` where `--block-ingress` is given.
//!
//! No state is shared between nodes. Each node's bridge layer judges the
//! frames its own containers send (to its own ports or into the VXLAN
//! device); what arrives over the VXLAN device was judged on the node that
//! sent it, and passes as a whitelisted port's frames do, its flows
//! remembered so the local backends' replies go back. The node's
//! load-balancer endpoint is whitelisted: traffic through a service VIP
//! reaches backends with its address.

use std::collections::HashMap;

use trafficjam_core::{ingress_table, InstanceId, Policy, Ruleset, Service};
use trafficjam_docker::overlay::{ingress_namespace, overlay_namespace, Namespace};
use trafficjam_docker::ports::PortCache;
use trafficjam_docker::{Discovery, DockerError, Driver};
use trafficjam_netlink::RouteSocket;

use super::docker::{Ctx, State, UNBOUND_TRIES};
use super::enforce;
use crate::commands::docker_policy;
use crate::firewall::Firewall;

/// The Engine's bridge for a node's containers' outside access.
pub(super) const GWBRIDGE: &str = "docker_gwbridge";

/// A namespace being enforced in, with its sockets.
pub(super) struct Site {
    pub ns: Namespace,
    pub fw: Firewall,
    pub route: RouteSocket,
}

impl Site {
    fn open(ns: Namespace) -> Result<Site, crate::error::CliError> {
        let fw = Firewall::open(Some(&ns.path))?;
        let route = RouteSocket::open_in(Some(&ns.path))?;
        Ok(Site { ns, fw, route })
    }
}

/// What the daemon knows of one managed overlay.
#[derive(Default)]
pub(super) struct Overlay {
    /// As Docker last described it.
    pub discovery: Option<Discovery>,
    /// Where it is enforced now (`None`: the node has no endpoint on it).
    pub site: Option<Site>,
    /// Looked for a port this many times since the last event.
    pub tries: u32,
}

/// How soon writing the ingress block is tried again after it failed.
const INGRESS_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Everything Swarm-related the daemon keeps.
#[derive(Default)]
pub(super) struct Swarm {
    pub overlays: HashMap<String, Overlay>,
    /// `ingress_sbox`, where `--block-ingress` is enforced.
    pub ingress: Option<Site>,
    /// Whether the absence of ingress_sbox was logged.
    pub ingress_waiting: bool,
    /// When writing the ingress block last failed (logged once; tried
    /// again a second later).
    pub ingress_failed: Option<std::time::Instant>,
    /// The subnets of docker_gwbridge last enforced.
    pub gwbridge: Option<Vec<ipnet::IpNet>>,
}

impl Swarm {
    /// Writing the ingress block failed: said once, tried again in
    /// [`INGRESS_RETRY`] through a namespace entered afresh.
    fn ingress_failed_with(&mut self, ctx: &Ctx<'_>, why: &str) {
        self.ingress = None;
        if self
            .ingress_failed
            .replace(std::time::Instant::now())
            .is_none()
        {
            ctx.log.warn(&format!("ingress: {why}; trying again"));
        }
    }

    /// Whether the daemon manages overlays or blocks ingress: namespaces to
    /// watch.
    pub fn active(&self, block_ingress: &[Service]) -> bool {
        !self.overlays.is_empty() || !block_ingress.is_empty()
    }

    /// Overlays whose endpoints still lack a port.
    pub fn unbound(&self) -> Vec<String> {
        self.overlays
            .iter()
            .filter(|(_, o)| {
                o.site.is_some()
                    && o.tries < UNBOUND_TRIES
                    && o.discovery
                        .as_ref()
                        .is_some_and(|d| !d.unbound().is_empty())
            })
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Take over `discovery` of the overlay `network` and enforce it.
pub(super) fn adopt(ctx: &mut Ctx<'_>, state: &mut State, network: &str, discovery: Discovery) {
    let discovery = discovery.without(&state.revoked);
    let first = !state.swarm.overlays.contains_key(network);
    if first {
        for c in discovery.changes_since(None) {
            ctx.log
                .info(&format!("network {} (overlay): {c}", discovery.network));
        }
    }
    let o = state.swarm.overlays.entry(network.to_string()).or_default();
    o.tries = 0;
    o.discovery = Some(discovery);
    enforce_overlay(ctx, &mut state.swarm, network);
}

/// Discover the overlay `network` again (an event about it, or its
/// namespace changed) and enforce it.
pub(super) async fn resync(
    ctx: &mut Ctx<'_>,
    state: &mut State,
    network: &str,
) -> Result<(), DockerError> {
    let filters = trafficjam_docker::discover::parse_filters(&ctx.args.policy.whitelist_filters)?;
    let d = ctx
        .client
        .discover(network, &filters, Some(&state.containers))
        .await?;
    if d.driver != Driver::Overlay {
        // Recreated under the same name as another kind: start over.
        state.swarm.overlays.remove(network);
        return Err(DockerError::Unexpected {
            what: format!("network {network}"),
            detail: "it is no longer an overlay".to_string(),
        });
    }
    adopt(ctx, state, network, d);
    Ok(())
}

/// Read the ports again of overlays with endpoints not bound yet.
pub(super) fn retry_unbound(ctx: &mut Ctx<'_>, state: &mut State) {
    for network in state.swarm.unbound() {
        if let Some(o) = state.swarm.overlays.get_mut(&network) {
            o.tries += 1;
        }
        enforce_overlay(ctx, &mut state.swarm, &network);
    }
}

/// The managed overlays an event is about: the network itself, or a
/// container with an endpoint on it.
pub(super) fn touched(swarm: &Swarm, ev: &bollard::models::EventMessage) -> Vec<String> {
    let Some(actor) = &ev.actor else {
        return Vec::new();
    };
    let id = actor.id.as_deref().unwrap_or_default();
    let name = actor
        .attributes
        .as_ref()
        .and_then(|a| a.get("name"))
        .map(String::as_str)
        .unwrap_or_default();
    let network_event = ev.typ == Some(bollard::models::EventMessageTypeEnum::NETWORK);
    swarm
        .overlays
        .iter()
        .filter(|(n, o)| {
            let Some(d) = &o.discovery else {
                return network_event && (*n == id || *n == name);
            };
            if network_event {
                d.is(id) || d.is(name)
            } else {
                d.endpoints.iter().any(|e| e.id == id)
            }
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// The overlays whose namespace appeared, went or was recreated since it
/// was last looked at.
pub(super) fn moved_namespaces(ctx: &Ctx<'_>, state: &State) -> Vec<String> {
    let root = &ctx.args.swarm.docker_exec_root;
    state
        .swarm
        .overlays
        .iter()
        .filter(|(_, o)| {
            let Some(d) = &o.discovery else { return false };
            let now = overlay_namespace(root, &d.id).ok().flatten();
            now.map(|n| n.identity) != o.site.as_ref().map(|s| s.ns.identity)
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// Enforce what is known of the overlay `network` in its namespace, if the
/// node has one.
fn enforce_overlay(ctx: &mut Ctx<'_>, swarm: &mut Swarm, network: &str) {
    let log = ctx.log;
    let Some(o) = swarm.overlays.get_mut(network) else {
        return;
    };
    let Some(d) = o.discovery.as_mut() else {
        return;
    };
    let root = &ctx.args.swarm.docker_exec_root;
    let ns = match overlay_namespace(root, &d.id) {
        Ok(ns) => ns,
        Err(e) => {
            log.warn(&format!(
                "network {network}: cannot read {}: {e}",
                root.join("netns").display()
            ));
            None
        }
    };
    let Some(ns) = ns else {
        if o.site.take().is_some() {
            log.info(&format!(
                "network {network}: its namespace is gone (no task of it on this node); nothing to enforce until one joins"
            ));
        }
        return;
    };
    if o.site.as_ref().map(|s| &s.ns) != Some(&ns) {
        let path = ns.path.clone();
        match Site::open(ns) {
            Ok(site) => {
                log.info(&format!(
                    "network {network}: enforcing in namespace {}",
                    path.display()
                ));
                o.site = Some(site);
            }
            Err(e) => {
                log.warn(&format!(
                    "network {network}: cannot enter namespace {}: {e}",
                    path.display()
                ));
                o.site = None;
                return;
            }
        }
    }
    let Some(site) = o.site.as_mut() else { return };
    // One bridge per subnet (br0, br1…): every port of every one of them.
    let ports = match overlay_ports(&mut site.route) {
        Ok(p) => p,
        Err(e) => {
            log.warn(&format!(
                "network {network}: reading the bridges in {} failed: {e}",
                site.ns.path.display()
            ));
            return;
        }
    };
    d.overlay_bridges = ports.iter().map(|c| c.bridge.clone()).collect();
    if d.overlay_bridges.is_empty() {
        d.overlay_bridges.push(d.bridge.clone());
    }
    d.bridge_index = ports.first().and_then(|c| c.index);
    let all: Vec<trafficjam_netlink::BridgePort> = ports
        .iter()
        .flat_map(|c| c.ports().iter().cloned())
        .collect();
    d.find_ports(&all);
    let policy = match docker_policy(&ctx.args.policy, d, network) {
        Ok(p) => p,
        Err(e) => {
            log.warn(&format!("network {network}: {e}; keeping its last rules"));
            return;
        }
    };
    let context = format!("network {network} (namespace {}): ", site.ns.path.display());
    if let Err(e) = enforce(&mut site.fw, policy, &context, log) {
        log.warn(&format!("network {network}: applying failed: {e}"));
    }
}

/// The bridges of an overlay's namespace, each with its ports (the
/// namespace holds only the network's bridges).
fn overlay_ports(
    route: &mut RouteSocket,
) -> Result<Vec<PortCache>, trafficjam_netlink::NetlinkError> {
    // One dump of the namespace's links serves every bridge.
    let links = route.links()?;
    let mut bridges: Vec<&str> = links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("bridge"))
        .map(|l| l.name.as_str())
        .collect();
    bridges.sort();
    Ok(bridges
        .into_iter()
        .map(|b| PortCache::of_links(route, &links, b))
        .collect())
}

/// Enforce the node's docker_gwbridge in the host's namespace: its
/// containers (every task of an overlay has a leg there) reach neither
/// each other nor the host, and send nothing to the data-path port.
pub(super) async fn enforce_gwbridge(ctx: &mut Ctx<'_>, state: &mut State) {
    if state.swarm.overlays.is_empty() {
        return;
    }
    let log = ctx.log;
    let subnets = match ctx.client.subnets(GWBRIDGE).await {
        Ok(s) => s,
        Err(DockerError::NetworkNotFound(_)) => return,
        Err(e) => {
            log.warn(&format!("{GWBRIDGE}: {e}"));
            return;
        }
    };
    let policy = match gwbridge_policy(ctx, &subnets) {
        Ok(p) => p,
        Err(e) => {
            log.warn(&format!("{GWBRIDGE}: {e}"));
            return;
        }
    };
    if let Err(e) = enforce(ctx.fw, policy, &format!("{GWBRIDGE}: "), log) {
        log.warn(&format!("{GWBRIDGE}: applying failed: {e}"));
        return;
    }
    state.swarm.gwbridge = Some(subnets);
}

fn gwbridge_policy(
    ctx: &Ctx<'_>,
    subnets: &[ipnet::IpNet],
) -> Result<Policy, crate::error::CliError> {
    let args = &ctx.args.policy;
    let instance = swarm_instance(args.instance.as_deref(), "gwbridge")?;
    let data_path = Service::udp(ctx.args.swarm.data_path_port);
    Ok(Policy::new(
        instance,
        subnets.iter().copied(),
        [],
        args.allow_host_traffic,
    )?
    .with_bridges([GWBRIDGE.to_string()])?
    .with_host_services(args.allow_host_port.iter().copied())
    .with_blocked_outbound([data_path]))
}

/// The instance owning the node-wide Swarm rules of one `kind`
/// (`gwbridge`, `ingress`): `<instance>-<kind>` under `--instance`.
fn swarm_instance(
    explicit: Option<&str>,
    kind: &str,
) -> Result<InstanceId, crate::error::CliError> {
    Ok(InstanceId::new(&match explicit {
        Some(i) => format!("{i}-{kind}"),
        None => kind.to_string(),
    })?)
}

/// Write the ingress block into ingress_sbox when it is new (created,
/// recreated), when writing it last failed, or when `force`d (a poll:
/// someone may have removed it, or the Engine recreated the namespace).
pub(super) fn enforce_ingress(ctx: &Ctx<'_>, swarm: &mut Swarm, force: bool) {
    let ports = &ctx.args.swarm.block_ingress;
    if ports.is_empty() {
        return;
    }
    let log = ctx.log;
    let Some(ns) = ingress_namespace(&ctx.args.swarm.docker_exec_root) else {
        if swarm.ingress.take().is_some() || !swarm.ingress_waiting {
            log.info(&format!(
                "ingress: no {} on this node (not in a swarm, or {} not mounted here); waiting for it",
                trafficjam_docker::overlay::INGRESS_SANDBOX,
                ctx.args.swarm.docker_exec_root.join("netns").display()
            ));
        }
        swarm.ingress_waiting = true;
        return;
    };
    swarm.ingress_waiting = false;
    // A poll enters the namespace again whatever it looks like: one the
    // Engine recreated can carry the identity of one freed before it.
    let entered = swarm.ingress.as_ref().map(|s| &s.ns) == Some(&ns);
    let failed_lately = swarm
        .ingress_failed
        .is_some_and(|t| t.elapsed() < INGRESS_RETRY);
    if !force && (entered || failed_lately) {
        return;
    }
    let site = match Site::open(ns) {
        Ok(site) => swarm.ingress.insert(site),
        Err(e) => {
            swarm.ingress_failed_with(ctx, &format!("cannot enter ingress_sbox: {e}"));
            return;
        }
    };
    let instance = match swarm_instance(ctx.args.policy.instance.as_deref(), "ingress") {
        Ok(i) => i,
        Err(e) => {
            log.warn(&format!("ingress: {e}"));
            return;
        }
    };
    let ruleset = Ruleset {
        tables: vec![ingress_table(&instance, ports)],
    };
    match site.fw.apply(ruleset) {
        Ok(changes) => {
            swarm.ingress_failed = None;
            let list: Vec<String> = ports.iter().map(|s| s.to_string()).collect();
            for (table, change) in changes {
                let line = format!(
                    "ingress (namespace {}): table {} {}: {}; blocking the routing mesh for {}",
                    site.ns.path.display(),
                    table.family,
                    table.name,
                    crate::commands::apply::describe(&change),
                    list.join(", ")
                );
                if change == trafficjam_core::wire::Change::Unchanged {
                    log.debug(&line);
                } else {
                    log.info(&line);
                }
            }
        }
        // Tried again in a second, not at the next poll: the namespace may
        // have been half set up.
        Err(e) => swarm.ingress_failed_with(ctx, &format!("applying failed: {e}")),
    }
}
