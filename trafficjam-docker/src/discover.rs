//! A network's subnets, bridge and containers, as Docker reports them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use bollard::models::{EndpointResource, Ipam};
use bollard::query_parameters::{InspectNetworkOptions, ListContainersOptions};
use ipnet::IpNet;
use trafficjam_core::model::parse_mac;
use trafficjam_core::{Allowed, InstanceId, Policy, PolicyError, Port, Role};

use super::allow::AllowLabels;
use super::containers::Containers;
use super::filter::{self, Container, Filter};
use super::{DockerClient, DockerError};

/// A container's endpoint on the managed network.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Container name (without the leading `/`).
    pub name: String,
    /// Container id.
    pub id: String,
    /// Its IPv4 and IPv6 addresses on the network.
    pub addrs: Vec<IpAddr>,
    /// Its MAC address on the network, as Docker set it.
    pub mac: Option<[u8; 6]>,
    /// The bridge port it is plugged into, once found.
    pub port: Option<String>,
}

/// What a network's log lines are about: its subnets, whitelisted
/// containers and allowed flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The subnets.
    pub subnets: Vec<IpNet>,
    /// The whitelisted containers, with their ports.
    pub whitelist: Vec<Endpoint>,
    /// The allowed flows, described.
    pub allowed: Vec<String>,
}

/// What [`Discovery::find_ports_telling`] found changed, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PortsChanged {
    /// Nothing: the same ports, the same bindings.
    Nothing,
    /// Only ports nobody was bound to are gone (or off the bridge). The
    /// rules still naming them hold no danger: no such port sends, and a
    /// new one of that name is quarantined anyway.
    QuarantinedLeft,
    /// Who is on which port, or which ports are nobody's, changed.
    Bindings,
}

/// What Docker says about one managed network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The network's name.
    pub network: String,
    /// Its id.
    pub id: String,
    /// Every IPAM subnet, IPv4 and IPv6.
    pub subnets: Vec<IpNet>,
    /// The Linux bridge behind it.
    pub bridge: String,
    /// Containers attached to it (running, or being started) matching a
    /// whitelist filter.
    pub whitelist: Vec<Endpoint>,
    /// Every container endpoint on it, whitelisted or not.
    pub endpoints: Vec<Endpoint>,
    /// Ports of the bridge no endpoint was found on (a container being
    /// set up, or one Docker does not report): quarantined.
    pub unidentified: Vec<String>,
    /// The bridge's interface index, once its ports were read.
    pub bridge_index: Option<u32>,
    /// What is known of the containers on it (names, images, labels), for
    /// their allow labels.
    pub containers: HashMap<String, Container>,
    /// Every container on the network by address, for log lines.
    pub names: std::collections::BTreeMap<IpAddr, String>,
    /// What kind of network it is.
    pub driver: Driver,
    /// Ports of the bridge that lead to the network's containers on other
    /// nodes (an overlay's VXLAN device), once its ports were read.
    pub remote: Vec<String>,
    /// An overlay's bridges in its namespace, one per subnet (`br0`,
    /// `br1`…), once read; empty for a bridge network.
    pub overlay_bridges: Vec<String>,
}

/// The network drivers trafficjam enforces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Driver {
    /// A bridge of this host (`br-<id>`), in the host's namespace.
    #[default]
    Bridge,
    /// A Swarm overlay: on each node a bridge (`br0`) in a namespace of its
    /// own, with the node's tasks and its load-balancer endpoint as ports
    /// and a VXLAN device to the other nodes.
    Overlay,
}

/// The bridge of an overlay's first subnet inside its namespace (each
/// subnet has its own: `br0`, `br1`…, each with its VXLAN device).
pub const OVERLAY_BRIDGE: &str = "br0";
/// How the overlay names its VXLAN devices inside the namespace (`vxlan0`).
pub const OVERLAY_VXLAN_PREFIX: &str = "vxlan";
/// The key of a node's load-balancer endpoint in an overlay's containers
/// (`lb-<network name>`): the source of traffic through a service VIP.
pub const LOAD_BALANCER_PREFIX: &str = "lb-";

impl Discovery {
    /// The policy that isolates this network: its bridge, and each
    /// container whose bridge port was found bound to that port with the
    /// MAC and addresses Docker gave it (whitelisted ones as proxies).
    pub fn policy(
        &self,
        instance: InstanceId,
        allow_host_traffic: bool,
    ) -> Result<Policy, PolicyError> {
        self.policy_allowing(instance, allow_host_traffic, &self.allowed())
    }

    /// [`policy`](Self::policy) with the flows the allow labels open
    /// already found ([`allowed`](Self::allowed)): the daemon finds them
    /// once per event, for the policy and for its log line.
    pub fn policy_allowing(
        &self,
        instance: InstanceId,
        allow_host_traffic: bool,
        allowed: &[(Allowed, String)],
    ) -> Result<Policy, PolicyError> {
        let addrs = self.whitelist.iter().flat_map(|w| w.addrs.iter().copied());
        // Hundreds of endpoints, tens of proxies, on every event: by
        // binary search.
        let mut whitelisted: Vec<&str> = self.whitelist.iter().map(|w| w.id.as_str()).collect();
        whitelisted.sort_unstable();
        let mut ports = Vec::with_capacity(self.endpoints.len());
        ports.extend(self.endpoints.iter().filter_map(|e| {
            Some(Port {
                name: e.port.clone()?,
                role: if whitelisted.binary_search(&e.id.as_str()).is_ok() {
                    Role::Proxy
                } else {
                    Role::Backend
                },
                mac: e.mac?,
                addrs: e.addrs.clone(),
            })
        }));
        let bridges = if self.overlay_bridges.is_empty() {
            vec![self.bridge.clone()]
        } else {
            self.overlay_bridges.clone()
        };
        let policy = Policy::new(instance, self.subnets.clone(), addrs, allow_host_traffic)?
            .with_bridges(bridges)?
            .with_ports(ports)?
            .with_unidentified(self.unidentified.iter().cloned())?
            .with_allowed(allowed.iter().map(|(a, _)| a.clone()))?;
        Ok(match self.driver {
            Driver::Bridge => policy,
            // Frames from the VXLAN device were judged on the node that
            // sent them; the tasks' addresses on other nodes are not known
            // here, so the bridge layer alone judges between containers.
            Driver::Overlay => policy
                .with_remote_ports(self.remote.iter().cloned())?
                .without_ip_forward(),
        })
    }

    /// The flows the containers' allow labels open, between bound ports,
    /// with the names of both ends.
    pub fn allowed(&self) -> Vec<(Allowed, String)> {
        let mut out = Vec::new();
        // Computed on every event: most networks have no allow label at
        // all, and then no endpoint need be looked at; the few that have
        // one are found by their containers' entries, not by hashing every
        // endpoint's id.
        let targets: Vec<&Container> = self
            .containers
            .values()
            .filter(|c| AllowLabels::declared(c))
            .collect();
        if targets.is_empty() {
            return out;
        }
        // The bound endpoints with what is known of their containers: each
        // looked up once, whatever the number of targets. (A container is
        // then known by its entry: ids of 64 characters are not compared.)
        let sources: Vec<(&Endpoint, &String, &Container)> = self
            .endpoints
            .iter()
            .filter_map(|e| Some((e, e.port.as_ref()?, self.containers.get(&e.id)?)))
            .collect();
        for &(to, to_port, c) in sources
            .iter()
            .filter(|(.., c)| targets.iter().any(|t| std::ptr::eq(*t, *c)))
        {
            let Ok(Some(labels)) = AllowLabels::of(c) else {
                continue;
            };
            for &(from, from_port, fc) in sources.iter().filter(|(.., fc)| !std::ptr::eq(*fc, c)) {
                if labels.admits(fc) {
                    let services: Vec<String> =
                        labels.services.iter().map(|s| s.to_string()).collect();
                    let what = if services.is_empty() {
                        "any port".to_string()
                    } else {
                        services.join(", ")
                    };
                    out.push((
                        Allowed {
                            from: from_port.clone(),
                            to: to_port.clone(),
                            services: labels.services.clone(),
                        },
                        format!("{} → {} ({what})", from.name, to.name),
                    ));
                }
            }
        }
        out
    }

    /// Allow labels that do not parse, as `container: why`: each is
    /// ignored (the container stays closed).
    pub fn allow_problems(&self) -> Vec<String> {
        // Checked on every event: only the containers that have one.
        if !self.containers.values().any(AllowLabels::declared) {
            return Vec::new();
        }
        let mut out: Vec<String> = self
            .endpoints
            .iter()
            .filter_map(|e| self.containers.get(&e.id))
            .filter_map(|c| {
                AllowLabels::of(c)
                    .err()
                    .map(|why| format!("{}: {why}", c.name))
            })
            .collect();
        out.sort();
        out
    }

    /// The containers whose bridge port was not found (not yet plugged in,
    /// or no MAC reported): they are not bound, and a whitelisted one
    /// cannot open connections until it is.
    pub fn unbound(&self) -> Vec<&Endpoint> {
        self.endpoints.iter().filter(|e| e.port.is_none()).collect()
    }

    /// Find each container's bridge port from its MAC address. Returns
    /// whether who is on which port, or which ports are nobody's, changed
    /// (a veth being set up is notified several times; the rules change
    /// only when that does).
    pub fn find_ports(&mut self, ports: &[trafficjam_netlink::BridgePort]) -> bool {
        self.find_ports_telling(ports) != PortsChanged::Nothing
    }

    /// [`find_ports`](Self::find_ports), telling what changed.
    pub fn find_ports_telling(&mut self, ports: &[trafficjam_netlink::BridgePort]) -> PortsChanged {
        // Hundreds of containers, and this runs on every link change: by
        // MACs in sorted lists (cheaper to build and search than maps or
        // names), and a name is copied only where a binding changed. Two
        // ports with one peer MAC bind neither (one of them forges it).
        let key = trafficjam_core::model::mac_key;
        let mut by_mac: Vec<(u64, usize)> = ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((key(p.peer_mac?), i)))
            .collect();
        by_mac.sort_unstable();
        let port_of = |m: [u8; 6]| -> Option<usize> {
            let m = key(m);
            let i = by_mac.partition_point(|(k, _)| *k < m);
            match (by_mac.get(i), by_mac.get(i + 1)) {
                (Some((k, p)), next) if *k == m && next.is_none_or(|(k2, _)| *k2 != m) => Some(*p),
                _ => None,
            }
        };
        let mut changed = false;
        // The ports an endpoint is found on (the whitelist repeats some of
        // the endpoints).
        let mut bound = vec![false; ports.len()];
        let endpoints = self.endpoints.iter_mut().map(|e| (e, true));
        for (e, endpoint) in endpoints.chain(self.whitelist.iter_mut().map(|e| (e, false))) {
            let at = e.mac.and_then(port_of);
            if let (Some(b), true) = (at.and_then(|i| bound.get_mut(i)), endpoint) {
                *b = true;
            }
            let now = at.and_then(|i| ports.get(i)).map(|p| p.name.as_str());
            if e.port.as_deref() != now {
                e.port = now.map(str::to_string);
                changed = true;
            }
        }
        // An overlay's VXLAN device is the only port of its bridge that is
        // not a veth; anything else no endpoint is found on is quarantined.
        let remote = |p: &&trafficjam_netlink::BridgePort| {
            self.driver == Driver::Overlay
                && p.kind.as_deref() == Some("vxlan")
                && p.name.starts_with(OVERLAY_VXLAN_PREFIX)
        };
        let remote_now: Vec<&str> = ports
            .iter()
            .filter(remote)
            .map(|p| p.name.as_str())
            .collect();
        let nobodys: Vec<&str> = ports
            .iter()
            .zip(&bound)
            .filter(|(p, bound)| !**bound && !remote(p))
            .map(|(p, _)| p.name.as_str())
            .collect();
        changed |= replace_if_changed(&mut self.remote, &remote_now);
        // Quarantined ports that left, and nothing else: a few names, so
        // compared by scanning.
        let only_left = !changed
            && nobodys.len() < self.unidentified.len()
            && nobodys
                .iter()
                .all(|n| self.unidentified.iter().any(|u| u == n));
        let quarantine = replace_if_changed(&mut self.unidentified, &nobodys);
        match (changed, quarantine) {
            (false, false) => PortsChanged::Nothing,
            _ if only_left => PortsChanged::QuarantinedLeft,
            _ => PortsChanged::Bindings,
        }
    }

    /// The same discovery without the given containers.
    pub fn without(&self, ids: &std::collections::HashSet<String>) -> Discovery {
        let mut d = self.clone();
        d.whitelist.retain(|w| !ids.contains(&w.id));
        d.endpoints.retain(|w| !ids.contains(&w.id));
        d
    }

    /// What [`changes_since`](Self::changes_since) compares, without the
    /// rest (hundreds of endpoints are not copied on every event).
    pub fn summary(&self) -> Summary {
        self.summary_allowing(&self.allowed())
    }

    /// Whether `summary` is what [`summary_allowing`](Self::summary_allowing)
    /// would give now: compared in place, so that the usual event (a
    /// backend coming or going) copies no whitelist to find nothing to say.
    pub fn summary_is(&self, summary: &Summary, allowed: &[(Allowed, String)]) -> bool {
        summary.subnets == self.subnets
            && summary.whitelist == self.whitelist
            && summary.allowed.iter().eq(allowed.iter().map(|(_, d)| d))
    }

    /// [`summary`](Self::summary) with the allowed flows already found
    /// ([`allowed`](Self::allowed)).
    pub fn summary_allowing(&self, allowed: &[(Allowed, String)]) -> Summary {
        Summary {
            subnets: self.subnets.clone(),
            whitelist: self.whitelist.clone(),
            allowed: allowed.iter().map(|(_, d)| d.clone()).collect(),
        }
    }

    /// Human description of what changed since `before`, e.g.
    /// `whitelisted traefik2 (172.23.0.5); removed traefik (172.23.0.2)`;
    /// without `before`, what the network is. (The daemon compares
    /// [`Summary`]s: see [`Summary::changes_since`].)
    pub fn changes_since(&self, before: Option<&Discovery>) -> Vec<String> {
        let Some(before) = before else {
            let names: Vec<String> = self.whitelist.iter().map(describe).collect();
            return vec![format!(
                "subnets {}; whitelisted: {}",
                join(&self.subnets),
                if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                }
            )];
        };
        self.summary().changes_since(&before.summary())
    }
}

/// A whitelisted container in a log line: `traefik (172.23.0.2; port veth1)`.
fn describe(w: &Endpoint) -> String {
    let addrs: Vec<String> = w.addrs.iter().map(|a| a.to_string()).collect();
    match &w.port {
        Some(p) => format!("{} ({}; port {p})", w.name, addrs.join(", ")),
        None => format!("{} ({})", w.name, addrs.join(", ")),
    }
}

impl Summary {
    /// What changed since `before`, e.g. `whitelisted traefik2
    /// (172.23.0.5); removed traefik (172.23.0.2)`.
    pub fn changes_since(&self, before: &Summary) -> Vec<String> {
        let mut out = Vec::new();
        if before.subnets != self.subnets {
            out.push(format!(
                "subnets {} -> {}",
                join(&before.subnets),
                join(&self.subnets)
            ));
        }
        for w in &self.whitelist {
            if !before.whitelist.contains(w) {
                out.push(format!("whitelisted {}", describe(w)));
            }
        }
        for w in &before.whitelist {
            if !self.whitelist.contains(w) {
                out.push(format!("removed {}", describe(w)));
            }
        }
        let (now, then) = (&self.allowed, &before.allowed);
        out.extend(
            now.iter()
                .filter(|d| !then.contains(d))
                .map(|d| format!("allowed {d}")),
        );
        out.extend(
            then.iter()
                .filter(|d| !now.contains(d))
                .map(|d| format!("no longer allowed {d}")),
        );
        out
    }
}

/// Make `names` hold `now`, copying only if it differs; whether it did.
fn replace_if_changed(names: &mut Vec<String>, now: &[&str]) -> bool {
    if names.iter().map(String::as_str).eq(now.iter().copied()) {
        return false;
    }
    *names = now.iter().map(|n| n.to_string()).collect();
    true
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every IPAM subnet of a network, IPv4 and IPv6, normalised. A network
/// with none cannot be protected: that is an error, never an empty (open)
/// policy.
fn subnets_of(name: &str, ipam: Option<Ipam>) -> Result<Vec<IpNet>, DockerError> {
    let mut subnets = Vec::new();
    for cfg in ipam.and_then(|i| i.config).unwrap_or_default() {
        let Some(s) = cfg.subnet.filter(|s| !s.is_empty()) else {
            continue;
        };
        let parsed = s.parse::<IpNet>().map_err(|e| DockerError::Unexpected {
            what: format!("the subnets of network {name}"),
            detail: format!("{s:?}: {e}"),
        })?;
        subnets.push(parsed.trunc());
    }
    if subnets.is_empty() {
        return Err(DockerError::NoSubnet(name.to_string()));
    }
    subnets.sort();
    subnets.dedup();
    Ok(subnets)
}

/// The addresses of an endpoint (`"172.23.0.3/16"`, `"fd00::3/64"`);
/// missing, empty or unparsable ones are skipped.
pub(crate) fn endpoint_addrs(ep: &EndpointResource) -> Vec<IpAddr> {
    [&ep.ipv4_address, &ep.ipv6_address]
        .into_iter()
        .flatten()
        .filter_map(|a| a.parse::<IpNet>().ok().map(|n| n.addr()))
        .collect()
}

impl DockerClient {
    /// The ids of the containers on network `id` that Docker says match any
    /// of `filters`. Every container, not only running ones: a container
    /// being started is connected already.
    pub(crate) async fn list_matching(
        &self,
        id: &str,
        filters: &[(String, String)],
    ) -> Result<HashSet<String>, DockerError> {
        let mut out = HashSet::new();
        for (key, value) in filters {
            crate::count_api_call();
            let mut f = HashMap::new();
            f.insert(key.clone(), vec![value.clone()]);
            f.insert("network".to_string(), vec![id.to_string()]);
            let opts = ListContainersOptions {
                all: true,
                filters: Some(f),
                ..Default::default()
            };
            let found = self
                .api()
                .list_containers(Some(opts))
                .await
                .map_err(|e| match e {
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 400 | 500,
                        message,
                    } => DockerError::FilterRejected {
                        filter: format!("{key}={value}"),
                        message,
                    },
                    e => DockerError::api(self.host(), "listing whitelisted containers", e),
                })?;
            out.extend(found.into_iter().filter_map(|c| c.id));
        }
        Ok(out)
    }
}

/// The short form of a container id, as `docker ps` shows it.
fn short(id: &str) -> String {
    id.get(..12).unwrap_or(id).to_string()
}

/// Docker's container filter keys (`docker ps --filter`): a filter is
/// matched here where it can be, so Docker may never see it; an unknown
/// key is refused as Docker would refuse it.
const FILTER_KEYS: [&str; 15] = [
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

/// Split `key=value` filters (Docker's `--filter` syntax) and check their
/// keys.
pub fn parse_filters(filters: &[String]) -> Result<Vec<(String, String)>, DockerError> {
    filters
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                let k = k.trim();
                if !FILTER_KEYS.contains(&k) {
                    return Err(DockerError::FilterRejected {
                        filter: f.clone(),
                        message: format!(
                            "invalid filter '{k}' (Docker's container filters are {})",
                            FILTER_KEYS.join(", ")
                        ),
                    });
                }
                Ok((k.to_string(), v.to_string()))
            }
            _ => Err(DockerError::BadFilter(f.clone())),
        })
        .collect()
}

impl DockerClient {
    /// `GET /networks/NAME`, a missing network told apart.
    async fn inspect(&self, network: &str) -> Result<bollard::models::NetworkInspect, DockerError> {
        crate::count_api_call();
        self.api()
            .inspect_network(network, None::<InspectNetworkOptions>)
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => DockerError::NetworkNotFound(network.to_string()),
                e => DockerError::api(self.host(), "inspecting the network", e),
            })
    }

    /// The subnets of a network of the Engine's own (`docker_gwbridge`).
    pub async fn subnets(&self, network: &str) -> Result<Vec<IpNet>, DockerError> {
        let net = self.inspect(network).await?;
        subnets_of(network, net.ipam)
    }

    /// Ask Docker for `network`'s subnets and containers, and which of
    /// them match any of `filters` (several are OR-ed): decided from
    /// `known` containers where the filters allow it, else by Docker's own
    /// container filter.
    pub async fn discover(
        &self,
        network: &str,
        filters: &[(String, String)],
        known: Option<&Containers>,
    ) -> Result<Discovery, DockerError> {
        let net = self.inspect(network).await?;
        let name = net.name.clone().unwrap_or_else(|| network.to_string());
        let id = net.id.clone().unwrap_or_default();
        let driver = match net.driver.as_deref().unwrap_or_default() {
            "bridge" => Driver::Bridge,
            "overlay" => Driver::Overlay,
            other => {
                return Err(DockerError::UnsupportedDriver {
                    name,
                    driver: other.to_string(),
                })
            }
        };
        let subnets = subnets_of(&name, net.ipam)?;
        let bridge = match driver {
            Driver::Bridge => net
                .options
                .as_ref()
                .and_then(|o| o.get("com.docker.network.bridge.name").cloned())
                .unwrap_or_else(|| format!("br-{}", id.get(..12).unwrap_or(&id))),
            Driver::Overlay => OVERLAY_BRIDGE.to_string(),
        };

        // Addresses of every endpoint on the network, by container id.
        let containers = net.containers.unwrap_or_default();
        let names = containers
            .values()
            .flat_map(|ep| {
                let name = ep.name.clone().unwrap_or_default();
                endpoint_addrs(ep)
                    .into_iter()
                    .map(move |a| (a, name.clone()))
            })
            .filter(|(_, n)| !n.is_empty())
            .collect();
        let mut all: Vec<Endpoint> = containers
            .into_iter()
            .map(|(cid, ep)| Endpoint {
                name: ep.name.clone().unwrap_or_else(|| short(&cid)),
                mac: ep.mac_address.as_deref().and_then(parse_mac),
                addrs: endpoint_addrs(&ep),
                id: cid,
                port: None,
            })
            .collect();
        all.sort();
        let endpoints: HashMap<String, (Vec<IpAddr>, Option<[u8; 6]>)> = all
            .iter()
            .map(|e| (e.id.clone(), (e.addrs.clone(), e.mac)))
            .collect();

        // Who is whitelisted: decided from what is known of each container
        // where the filters allow it (see `filter`), else by Docker.
        let parsed: Vec<Filter> = filters.iter().map(|(k, v)| Filter::new(k, v)).collect();
        // An overlay's load-balancer endpoint is no container: whitelisted,
        // as traffic through a service VIP comes from it.
        let is_lb = |id: &str| driver == Driver::Overlay && id.starts_with(LOAD_BALANCER_PREFIX);
        let decided: HashMap<&str, Option<bool>> = all
            .iter()
            .map(|e| {
                let d = if is_lb(&e.id) {
                    Some(true)
                } else {
                    known
                        .and_then(|k| k.get(&e.id))
                        .and_then(|c| filter::any_matches(&parsed, c))
                };
                (e.id.as_str(), d)
            })
            .collect();
        let listed = if decided.values().any(Option::is_none) {
            self.list_matching(&id, filters).await?
        } else {
            HashSet::new()
        };
        let mut whitelist: BTreeMap<String, Endpoint> = BTreeMap::new();
        for e in &all {
            let yes = match decided.get(e.id.as_str()).copied().flatten() {
                Some(d) => d,
                None => listed.contains(&e.id),
            };
            if !yes {
                continue;
            }
            let (addrs, mac) = endpoints.get(&e.id).cloned().unwrap_or_default();
            let mut addrs: Vec<IpAddr> = addrs
                .into_iter()
                .filter(|a| subnets.iter().any(|s| s.contains(a)))
                .collect();
            addrs.sort();
            whitelist.insert(
                e.id.clone(),
                Endpoint {
                    name: e.name.clone(),
                    id: e.id.clone(),
                    addrs,
                    mac,
                    port: None,
                },
            );
        }
        let mut whitelist: Vec<Endpoint> = whitelist.into_values().collect();
        whitelist.sort();
        Ok(Discovery {
            network: name,
            id,
            subnets,
            bridge,
            whitelist,
            containers: all
                .iter()
                .filter_map(|e| known.and_then(|k| k.get(&e.id)).cloned())
                .map(|c| (c.id.clone(), c))
                .collect(),
            endpoints: all,
            unidentified: Vec::new(),
            bridge_index: None,
            names,
            driver,
            remote: Vec::new(),
            overlay_bridges: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(white: &[(&str, &[&str])]) -> Discovery {
        let whitelist: Vec<Endpoint> = white
            .iter()
            .map(|(n, a)| Endpoint {
                mac: None,
                port: None,
                name: n.to_string(),
                id: format!("id-{n}"),
                addrs: a.iter().map(|x| x.parse().unwrap()).collect(),
            })
            .collect();
        Discovery {
            network: "web".into(),
            id: "abc".into(),
            subnets: vec!["172.23.0.0/16".parse().unwrap()],
            bridge: "br-abc".into(),
            names: Default::default(),
            endpoints: whitelist.clone(),
            unidentified: vec![],
            bridge_index: None,
            containers: HashMap::new(),
            whitelist,
            driver: Driver::Bridge,
            remote: vec![],
            overlay_bridges: vec![],
        }
    }

    #[test]
    fn an_overlays_vxlan_device_is_its_remote_port() {
        let mut d = d(&[("lb-web", &["10.0.1.5"])]);
        d.driver = Driver::Overlay;
        d.subnets = vec!["10.0.1.0/24".parse().unwrap()];
        d.endpoints[0].mac = Some([2, 0x42, 10, 0, 1, 5]);
        let lb = trafficjam_netlink::BridgePort {
            name: "veth0".into(),
            peer_mac: Some([2, 0x42, 10, 0, 1, 5]),
            peer_addrs: vec![],
            has_peer: true,
            kind: Some("veth".into()),
        };
        let vxlan = trafficjam_netlink::BridgePort {
            name: "vxlan0".into(),
            peer_mac: None,
            peer_addrs: vec![],
            has_peer: false,
            kind: Some("vxlan".into()),
        };
        d.find_ports(&[lb, vxlan.clone()]);
        assert_eq!(d.remote, ["vxlan0"]);
        assert!(d.unidentified.is_empty(), "{:?}", d.unidentified);
        let p = d.policy(InstanceId::default(), false).unwrap();
        assert_eq!(p.remote_ports(), ["vxlan0"]);
        assert!(!p.ip_forward());
        // On a bridge network the same device is quarantined.
        d.driver = Driver::Bridge;
        d.find_ports(&[vxlan]);
        assert!(d.remote.is_empty());
        assert_eq!(d.unidentified, ["vxlan0"]);
    }

    #[test]
    fn every_container_found_on_the_bridge_is_a_bound_port() {
        let mut d = d(&[("proxy", &["172.23.0.2"])]);
        d.endpoints.push(Endpoint {
            name: "app".into(),
            id: "id-app".into(),
            addrs: vec!["172.23.0.3".parse().unwrap()],
            mac: None,
            port: None,
        });
        d.endpoints[0].mac = Some([2, 0x42, 0xac, 0x17, 0, 2]);
        d.endpoints[1].mac = Some([2, 0x42, 0xac, 0x17, 0, 3]);
        let port = |name: &str, last| trafficjam_netlink::BridgePort {
            name: name.into(),
            peer_mac: Some([2, 0x42, 0xac, 0x17, 0, last]),
            peer_addrs: vec![],
            has_peer: true,
            kind: Some("veth".into()),
        };
        assert!(d.find_ports(&[port("veth-p", 2)]));
        assert_eq!(d.unbound().len(), 1, "app's port is not plugged in yet");
        // The same ports again (a veth notified once more): no change, so
        // the daemon compiles nothing.
        assert!(!d.find_ports(&[port("veth-p", 2)]));
        let all = [port("veth-p", 2), port("veth-a", 3), port("veth-x", 9)];
        assert!(d.find_ports(&all));
        assert!(d.unbound().is_empty());
        assert_eq!(d.unidentified, ["veth-x"], "a port nobody reports");
        assert!(!d.find_ports(&all));
        // Only a port nobody is on leaving is a change too, of its own kind.
        assert_eq!(
            d.find_ports_telling(&all[..2]),
            PortsChanged::QuarantinedLeft
        );
        assert!(d.unidentified.is_empty());
        // A bound container's port leaving is not.
        assert_eq!(d.find_ports_telling(&all[..1]), PortsChanged::Bindings);
        assert!(d.find_ports(&all[..2]));
        assert!(d.find_ports(&all));
        let p = d.policy(InstanceId::default(), false).unwrap();
        let roles: Vec<(&str, Role)> = p
            .ports()
            .iter()
            .map(|p| (p.name.as_str(), p.role))
            .collect();
        assert_eq!(roles, [("veth-a", Role::Backend), ("veth-p", Role::Proxy)]);
        assert_eq!(p.unidentified(), ["veth-x"]);
        assert_eq!(p.bridges(), ["br-abc"]);
        // A second port whose peer claims the proxy's MAC: neither is the
        // proxy's (one forges it), both are quarantined.
        let forged = [port("veth-p", 2), port("veth-a", 3), port("veth-f", 2)];
        assert!(d.find_ports(&forged));
        assert_eq!(d.unbound().len(), 1, "the proxy is not bound");
        assert!(d.whitelist[0].port.is_none());
        assert_eq!(d.unidentified, ["veth-p", "veth-f"]);
        assert_eq!(
            parse_mac("02:42:ac:17:00:02"),
            Some([2, 0x42, 0xac, 0x17, 0, 2])
        );
        assert_eq!(parse_mac("02:42"), None);
    }

    #[test]
    fn filters_must_be_key_value() {
        assert_eq!(
            parse_filters(&["label=role=proxy".into()]).unwrap(),
            vec![("label".to_string(), "role=proxy".to_string())]
        );
        assert!(matches!(
            parse_filters(&["traefik".into()]),
            Err(DockerError::BadFilter(_))
        ));
        assert!(parse_filters(&["=x".into()]).is_err());
        assert!(matches!(
            parse_filters(&["bogus=1".into()]),
            Err(DockerError::FilterRejected { .. })
        ));
    }

    #[test]
    fn changes_name_containers_and_addresses() {
        let a = d(&[("traefik", &["172.23.0.2"])]);
        let b = d(&[("traefik2", &["172.23.0.5"])]);
        assert_eq!(
            b.changes_since(Some(&a)),
            vec![
                "whitelisted traefik2 (172.23.0.5)".to_string(),
                "removed traefik (172.23.0.2)".to_string()
            ]
        );
        assert!(a.changes_since(Some(&a)).is_empty());
        assert_eq!(
            a.changes_since(None),
            vec!["subnets 172.23.0.0/16; whitelisted: traefik (172.23.0.2)".to_string()]
        );
    }

    fn ipam(subnets: &[&str]) -> Option<Ipam> {
        use bollard::models::IpamConfig;
        Some(Ipam {
            config: Some(
                subnets
                    .iter()
                    .map(|s| IpamConfig {
                        subnet: Some(s.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        })
    }

    #[test]
    fn odd_ipam_answers_are_errors_or_correct_never_open() {
        assert!(matches!(
            subnets_of("n", None),
            Err(DockerError::NoSubnet(_))
        ));
        assert!(matches!(
            subnets_of("n", ipam(&[])),
            Err(DockerError::NoSubnet(_))
        ));
        assert!(matches!(
            subnets_of("n", ipam(&[""])),
            Err(DockerError::NoSubnet(_))
        ));
        assert!(matches!(
            subnets_of("n", ipam(&["not-a-subnet"])),
            Err(DockerError::Unexpected { .. })
        ));
        // IPv6-only, host bits set, duplicates: a correct policy.
        let v6 = subnets_of("n", ipam(&["fd00:1::5/64", "fd00:1::/64"])).unwrap();
        assert_eq!(v6, vec!["fd00:1::/64".parse::<IpNet>().unwrap()]);
        let d = Discovery {
            subnets: v6,
            ..d(&[("proxy", &["fd00:1::2"])])
        };
        let p = d.policy(InstanceId::default(), false).unwrap();
        assert_eq!(p.whitelist(), &["fd00:1::2".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn odd_endpoints_give_only_their_valid_addresses() {
        let ep = |v4: Option<&str>, v6: Option<&str>| EndpointResource {
            ipv4_address: v4.map(str::to_string),
            ipv6_address: v6.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(endpoint_addrs(&ep(None, None)), Vec::<IpAddr>::new());
        assert_eq!(
            endpoint_addrs(&ep(Some(""), Some("junk"))),
            Vec::<IpAddr>::new()
        );
        assert_eq!(
            endpoint_addrs(&ep(Some("172.23.0.3/16"), Some("fd00::3/64"))),
            vec![
                "172.23.0.3".parse::<IpAddr>().unwrap(),
                "fd00::3".parse().unwrap()
            ]
        );
    }

    #[test]
    fn container_without_address_whitelists_nothing() {
        let p = d(&[("starting", &[])])
            .policy(InstanceId::default(), false)
            .unwrap();
        assert!(p.whitelist().is_empty());
    }
}
