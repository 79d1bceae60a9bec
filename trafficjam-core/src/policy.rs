//! The isolation policy: what must hold on one managed network.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::model::Mac;

/// Why a [`Policy`] or an [`InstanceId`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No subnet was given: there would be nothing to protect.
    #[error("no subnet given: name at least one managed subnet (e.g. --subnet 172.23.0.0/16)")]
    NoSubnet,
    /// A subnet is a single address; containers cannot live in it.
    #[error(
        "subnet {0} is a single address (/{1}); give the network's prefix, e.g. 172.23.0.0/16"
    )]
    HostRouteSubnet(IpNet, u8),
    /// A whitelisted address is in none of the managed subnets, so
    /// whitelisting it would have no effect (and hints at a typo).
    #[error("whitelisted address {0} is outside every managed subnet ({1}); whitelist the proxy's address on this network")]
    WhitelistOutsideSubnets(IpAddr, String),
    /// A bridge or bridge port name is not a valid interface name.
    #[error("invalid interface name {0:?}: {1}")]
    InvalidPort(String, &'static str),
    /// The same port is listed twice.
    #[error("port {0} is listed twice")]
    DuplicatePort(String),
    /// An allowed flow names a port that is not a container port.
    #[error("allowed flow: {0} is not a container port of the network")]
    UnknownPort(String),
    /// Two ports claim the same MAC address or the same IP address: one of
    /// them is forging it, or the description of the network is stale.
    #[error("ports {0} and {1} both claim {2}; each address may belong to one port only")]
    SharedAddress(String, String, String),
    /// A port's MAC address is not a unicast address a container can own.
    #[error("port {0}: {1} is not a unicast MAC address")]
    InvalidMac(String, String),
    /// The instance id cannot be used to name kernel objects.
    #[error("invalid instance id {0:?}: {1}")]
    InvalidInstanceId(String, &'static str),
}

/// The name of one trafficjam instance. Each instance owns its own table,
/// so several instances never touch each other's rules.
///
/// 1 to 32 characters: ASCII letters, digits, `_` and `-`, starting with a
/// letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

impl InstanceId {
    /// The longest accepted instance id.
    pub const MAX_LEN: usize = 32;

    /// Validate an instance id.
    pub fn new(id: &str) -> Result<InstanceId, PolicyError> {
        let bad = |why| Err(PolicyError::InvalidInstanceId(id.to_string(), why));
        if id.is_empty() {
            return bad("it is empty");
        }
        if id.len() > Self::MAX_LEN {
            return bad("it is longer than 32 characters");
        }
        if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return bad("it must start with a letter or a digit");
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return bad("only ASCII letters, digits, '_' and '-' are allowed");
        }
        Ok(InstanceId(id.to_string()))
    }

    /// `name` with every character an id cannot hold replaced by `_`
    /// (the result may still need a leading letter or digit, and may be
    /// too long).
    pub fn sanitize(name: &str) -> String {
        name.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The NFLOG group this instance's blocked-connection log uses: derived
    /// from the id (FNV-1a) so that instances do not share one, in
    /// 1024..=65023.
    pub fn log_group(&self) -> u16 {
        let mut h: u32 = 0x811c_9dc5;
        for b in self.0.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        1024 + (h % 64_000) as u16
    }

    /// The prefix every logged packet of this instance carries.
    pub fn log_prefix(&self) -> String {
        format!("{}{}: ", crate::TABLE_PREFIX, self.0)
    }

    /// The name of the nftables table this instance owns.
    pub fn table_name(&self) -> String {
        format!("{}{}", crate::TABLE_PREFIX, self.0)
    }

    /// The instance owning a table, if the table name is one of ours.
    pub fn from_table_name(name: &str) -> Option<InstanceId> {
        InstanceId::new(name.strip_prefix(crate::TABLE_PREFIX)?).ok()
    }
}

impl Default for InstanceId {
    fn default() -> Self {
        InstanceId("default".to_string())
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for InstanceId {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InstanceId::new(s)
    }
}

/// What a container port is to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Role {
    /// A whitelisted container (the proxy): it may open connections to
    /// every container of the network.
    Proxy,
    /// Any other container: it only answers.
    Backend,
}

impl Role {
    /// `proxy` or `backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Proxy => "proxy",
            Role::Backend => "backend",
        }
    }
}

/// One container's port on a managed bridge (the host side of its veth),
/// and what the container may send through it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    /// The port's interface name, e.g. `veth1a2b3c4`.
    pub name: String,
    /// What the container is to the policy.
    pub role: Role,
    /// The container's MAC address: the only source MAC the port accepts.
    pub mac: Mac,
    /// The container's addresses: the only source addresses the port
    /// accepts (besides the IPv6 link-local address its MAC gives).
    pub addrs: Vec<IpAddr>,
}

/// A transport port: `5432/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Service {
    /// The protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    /// The port.
    pub port: u16,
}

impl Service {
    /// TCP port `port`.
    pub fn tcp(port: u16) -> Service {
        Service { proto: 6, port }
    }

    /// UDP port `port`.
    pub fn udp(port: u16) -> Service {
        Service { proto: 17, port }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            6 => write!(f, "{}/tcp", self.port),
            17 => write!(f, "{}/udp", self.port),
            p => write!(f, "{}/{p}", self.port),
        }
    }
}

impl FromStr for Service {
    type Err = String;

    /// `5432/tcp`, `53/udp`, or `80` (TCP).
    fn from_str(s: &str) -> Result<Service, String> {
        let (port, proto) = s.trim().split_once('/').unwrap_or((s.trim(), "tcp"));
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s:?}: not a port (1-65535), like 5432/tcp"))?;
        match proto.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Service::tcp(port)),
            "udp" => Ok(Service::udp(port)),
            other => Err(format!("{s:?}: protocol {other:?} is neither tcp nor udp")),
        }
    }
}

/// A flow the user allows between two containers of the network: new
/// connections from one port to another, to any port of it or only to
/// these services. Everything else between them stays dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Allowed {
    /// The port of the container that may open the connections.
    pub from: String,
    /// The port of the container they go to.
    pub to: String,
    /// The services they may go to; empty for any.
    pub services: Vec<Service>,
}

/// How the bridge layer tells a reply from a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Tracking {
    /// Flows the whitelisted ports open are remembered in dynamic sets with
    /// timeouts (`update @tcp4 { … }`): works on every kernel.
    #[default]
    FlowSets,
    /// Conntrack in the bridge family (`ct state established`): needs the
    /// kernel's nf_conntrack_bridge.
    Conntrack,
}

/// What trafficjam enforces on one managed network.
///
/// The network is its bridge(s) and the container ports on them. Between
/// two container ports nothing passes unless a whitelisted port
/// ([`Role::Proxy`]) opened the flow: the replies, and the neighbour
/// resolution it needs. Every port sends only with its own MAC and
/// addresses. Containers reach the host only if `allow_host_traffic`.
/// Traffic to and from outside the host is left alone.
///
/// Addresses matter where the bridge layer cannot see ports: traffic the
/// host routes between containers (a published port reached through the
/// gateway) is judged by the subnets and the whitelisted addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    instance: InstanceId,
    subnets: Vec<IpNet>,
    whitelist: Vec<IpAddr>,
    allow_host_traffic: bool,
    bridges: Vec<String>,
    ports: Vec<Port>,
    unidentified: Vec<String>,
    uplinks: Vec<String>,
    allowed: Vec<Allowed>,
    proxy_services: Vec<Service>,
    host_services: Vec<Service>,
    tracking: Tracking,
    log_per_second: Option<u32>,
    remote_ports: Vec<String>,
    ip_forward: bool,
    blocked_outbound: Vec<Service>,
}

impl Policy {
    /// Build and validate a policy. Subnets are normalised (host bits
    /// cleared, sorted, duplicates removed); so is the whitelist.
    pub fn new(
        instance: InstanceId,
        subnets: impl IntoIterator<Item = IpNet>,
        whitelist: impl IntoIterator<Item = IpAddr>,
        allow_host_traffic: bool,
    ) -> Result<Policy, PolicyError> {
        let mut subnets: Vec<IpNet> = subnets.into_iter().map(|n| n.trunc()).collect();
        subnets.sort();
        subnets.dedup();
        if subnets.is_empty() {
            return Err(PolicyError::NoSubnet);
        }
        if let Some(n) = subnets
            .iter()
            .find(|n| n.prefix_len() == n.max_prefix_len())
        {
            return Err(PolicyError::HostRouteSubnet(*n, n.prefix_len()));
        }
        let mut whitelist: Vec<IpAddr> = whitelist.into_iter().map(canonical).collect();
        whitelist.sort();
        whitelist.dedup();
        if let Some(ip) = whitelist
            .iter()
            .find(|ip| !subnets.iter().any(|n| n.contains(*ip)))
        {
            let list = subnets
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(PolicyError::WhitelistOutsideSubnets(*ip, list));
        }
        Ok(Policy {
            instance,
            subnets,
            whitelist,
            allow_host_traffic,
            bridges: Vec::new(),
            ports: Vec::new(),
            unidentified: Vec::new(),
            uplinks: Vec::new(),
            allowed: Vec::new(),
            proxy_services: Vec::new(),
            host_services: Vec::new(),
            tracking: Tracking::default(),
            log_per_second: None,
            remote_ports: Vec::new(),
            ip_forward: true,
            blocked_outbound: Vec::new(),
        })
    }

    /// Log dropped new connections to the instance's NFLOG group
    /// ([`InstanceId::log_group`]), at most `per_second` packets a second
    /// (with the same number as burst), so a flood cannot flood the log.
    pub fn with_log_blocked(mut self, per_second: u32) -> Policy {
        self.log_per_second = Some(per_second.max(1));
        self
    }

    /// The blocked-connection log's rate, when it is on.
    pub fn log_blocked(&self) -> Option<u32> {
        self.log_per_second
    }

    /// The bridges of the managed network (usually one): containers
    /// reaching the host through them are the host traffic the policy
    /// drops.
    pub fn with_bridges(
        mut self,
        bridges: impl IntoIterator<Item = String>,
    ) -> Result<Policy, PolicyError> {
        let mut bridges: Vec<String> = bridges.into_iter().collect();
        for b in &bridges {
            check_ifname(b)?;
        }
        bridges.sort();
        bridges.dedup();
        self.bridges = bridges;
        Ok(self)
    }

    /// The container ports of the managed bridges. Refused: bad names, a
    /// port listed twice, a multicast or zero MAC, and a MAC or an address
    /// claimed by two ports. The addresses of [`Role::Proxy`] ports inside
    /// the subnets join the whitelist.
    pub fn with_ports(
        mut self,
        ports: impl IntoIterator<Item = Port>,
    ) -> Result<Policy, PolicyError> {
        let mut ports: Vec<Port> = ports.into_iter().collect();
        for p in &mut ports {
            check_ifname(&p.name)?;
            if p.mac[0] & 1 != 0 || p.mac == [0; 6] {
                return Err(PolicyError::InvalidMac(
                    p.name.clone(),
                    crate::model::Value::Ether(p.mac).to_string(),
                ));
            }
            // The link-local address a MAC implies is always the port's
            // (the compiler adds it): kept out of `addrs`, so a port reads
            // back the same from the kernel whether the caller listed it.
            let implied = IpAddr::V6(crate::compile::eui64_link_local(p.mac));
            for a in &mut p.addrs {
                *a = canonical(*a);
            }
            p.addrs.retain(|a| *a != implied);
            p.addrs.sort();
            p.addrs.dedup();
        }
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        // Claims as numbers (a kind, then the MAC or address), formatted
        // only for the error, and found shared by sorting, not hashing: a
        // policy of hundreds of ports is built on every Docker event.
        // One list per kind, of plain integers: sorted several times faster
        // than one list of all claims, and the first shared one found is
        // the same (kinds in the order MAC, IPv4, IPv6).
        let mut macs: Vec<(u64, usize)> = Vec::with_capacity(ports.len());
        let mut v4: Vec<(u32, usize)> = Vec::new();
        let mut v6: Vec<(u128, usize)> = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            if i > 0 && ports[i - 1].name == p.name {
                return Err(PolicyError::DuplicatePort(p.name.clone()));
            }
            macs.push((crate::model::mac_key(p.mac), i));
            for a in &p.addrs {
                match a {
                    IpAddr::V4(a) => v4.push(((*a).into(), i)),
                    IpAddr::V6(a) => v6.push(((*a).into(), i)),
                }
            }
        }
        let shared = first_shared(macs, Claim::Mac)
            .or_else(|| first_shared(v4, Claim::V4))
            .or_else(|| first_shared(v6, Claim::V6));
        if let Some((claim, a, b)) = shared {
            return Err(PolicyError::SharedAddress(
                ports[a].name.clone(),
                ports[b].name.clone(),
                claim.to_string(),
            ));
        }
        let proxies: Vec<IpAddr> = ports
            .iter()
            .filter(|p| p.role == Role::Proxy)
            .flat_map(|p| p.addrs.iter().copied())
            .filter(|a| self.subnets.iter().any(|n| n.contains(a)))
            .collect();
        self.whitelist.extend(proxies);
        self.whitelist.sort();
        self.whitelist.dedup();
        self.ports = ports;
        Ok(self)
    }

    /// Bridge ports that lead out of the host rather than to a container (a
    /// physical NIC enslaved to the bridge): frames between them and the
    /// containers are traffic to and from outside, which the policy leaves
    /// alone. A name that is also a container port is refused.
    pub fn with_uplinks(
        mut self,
        uplinks: impl IntoIterator<Item = String>,
    ) -> Result<Policy, PolicyError> {
        let mut uplinks: Vec<String> = uplinks.into_iter().collect();
        for u in &uplinks {
            check_ifname(u)?;
            if self.ports.iter().any(|p| p.name == *u) {
                return Err(PolicyError::DuplicatePort(u.clone()));
            }
        }
        uplinks.sort();
        uplinks.dedup();
        self.uplinks = uplinks;
        Ok(self)
    }

    /// Ports of a managed bridge whose container is not known (yet): a
    /// runtime plugged it in and has not said whose it is. Nothing they
    /// send passes, and they count as backends for what is sent to them,
    /// until they are identified. A name that is already a container port
    /// or an uplink is refused.
    pub fn with_unidentified(
        mut self,
        ports: impl IntoIterator<Item = String>,
    ) -> Result<Policy, PolicyError> {
        let mut names: Vec<String> = ports.into_iter().collect();
        for n in &names {
            check_ifname(n)?;
            if self.has_port(n) || self.uplinks.contains(n) {
                return Err(PolicyError::DuplicatePort(n.clone()));
            }
        }
        names.sort();
        names.dedup();
        self.unidentified = names;
        Ok(self)
    }

    /// Whether `other` is this policy but for its container ports, its
    /// unidentified ones and its whitelisted addresses (what a
    /// [`PortUpdate`](crate::PortUpdate) changes). (Every other field is
    /// named, so one added later is not forgotten here.)
    pub(crate) fn same_except_ports(&self, other: &Policy) -> bool {
        let Policy {
            instance,
            subnets,
            whitelist: _,
            allow_host_traffic,
            bridges,
            ports: _,
            unidentified: _,
            uplinks,
            allowed,
            proxy_services,
            host_services,
            tracking,
            log_per_second,
            remote_ports,
            ip_forward,
            blocked_outbound,
        } = self;
        *instance == other.instance
            && *subnets == other.subnets
            && *allow_host_traffic == other.allow_host_traffic
            && *bridges == other.bridges
            && *uplinks == other.uplinks
            && *allowed == other.allowed
            && *proxy_services == other.proxy_services
            && *host_services == other.host_services
            && *tracking == other.tracking
            && *log_per_second == other.log_per_second
            && *remote_ports == other.remote_ports
            && *ip_forward == other.ip_forward
            && *blocked_outbound == other.blocked_outbound
    }

    /// Whether `name` is a container port (ports are sorted by name).
    fn has_port(&self, name: &str) -> bool {
        self.ports
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .is_ok()
    }

    /// Flows allowed between containers (see [`Allowed`]); both ends must
    /// be ports given to [`with_ports`](Self::with_ports) before.
    pub fn with_allowed(
        mut self,
        allowed: impl IntoIterator<Item = Allowed>,
    ) -> Result<Policy, PolicyError> {
        let mut allowed: Vec<Allowed> = allowed.into_iter().collect();
        for a in &mut allowed {
            for end in [&a.from, &a.to] {
                if !self.has_port(end) {
                    return Err(PolicyError::UnknownPort(end.clone()));
                }
            }
            a.services.sort();
            a.services.dedup();
        }
        allowed.sort();
        allowed.dedup();
        self.allowed = allowed;
        Ok(self)
    }

    /// Services of the whitelisted containers that every container may
    /// open connections to (`--allow-to-proxy`).
    pub fn with_proxy_services(mut self, services: impl IntoIterator<Item = Service>) -> Policy {
        self.proxy_services = sorted(services);
        self
    }

    /// Services of the host that containers may open connections to
    /// (`--allow-host-port`), when host traffic is otherwise blocked.
    pub fn with_host_services(mut self, services: impl IntoIterator<Item = Service>) -> Policy {
        self.host_services = sorted(services);
        self
    }

    /// The allowed flows, sorted.
    pub fn allowed(&self) -> &[Allowed] {
        &self.allowed
    }

    /// The whitelisted containers' services open to every container.
    pub fn proxy_services(&self) -> &[Service] {
        &self.proxy_services
    }

    /// The host's services open to containers.
    pub fn host_services(&self) -> &[Service] {
        &self.host_services
    }

    /// The unidentified ports, sorted.
    pub fn unidentified(&self) -> &[String] {
        &self.unidentified
    }

    /// The uplink ports, sorted.
    pub fn uplinks(&self) -> &[String] {
        &self.uplinks
    }

    /// How the bridge layer tells replies from new connections (see
    /// [`Tracking`]); [`Tracking::FlowSets`] unless set.
    pub fn with_tracking(mut self, tracking: Tracking) -> Policy {
        self.tracking = tracking;
        self
    }

    /// The managed bridges, sorted.
    pub fn bridges(&self) -> &[String] {
        &self.bridges
    }

    /// The container ports, sorted by name.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// How the bridge layer tracks flows.
    pub fn tracking(&self) -> Tracking {
        self.tracking
    }

    /// The instance this policy belongs to.
    pub fn instance(&self) -> &InstanceId {
        &self.instance
    }

    /// The managed subnets, sorted.
    pub fn subnets(&self) -> &[IpNet] {
        &self.subnets
    }

    /// The whitelisted addresses, sorted.
    pub fn whitelist(&self) -> &[IpAddr] {
        &self.whitelist
    }

    /// Whether containers may open connections to the host.
    pub fn allow_host_traffic(&self) -> bool {
        self.allow_host_traffic
    }

    /// Bridge ports that lead to the network's containers on other hosts
    /// (a Swarm overlay's VXLAN device). What arrives from them was judged
    /// where it was sent, so it passes as a whitelisted port's frames do
    /// (and its flows are remembered); what the local backends send to
    /// them passes only as replies and neighbour resolution, as towards a
    /// whitelisted port. They get no port security (they speak for many
    /// addresses). A name that is also a container port, an uplink or an
    /// unidentified port is refused.
    pub fn with_remote_ports(
        mut self,
        remote: impl IntoIterator<Item = String>,
    ) -> Result<Policy, PolicyError> {
        let mut remote: Vec<String> = remote.into_iter().collect();
        for r in &remote {
            check_ifname(r)?;
            let taken = self.ports.iter().any(|p| p.name == *r)
                || self.uplinks.contains(r)
                || self.unidentified.contains(r);
            if taken {
                return Err(PolicyError::DuplicatePort(r.clone()));
            }
        }
        remote.sort();
        remote.dedup();
        self.remote_ports = remote;
        Ok(self)
    }

    /// The remote ports, sorted.
    pub fn remote_ports(&self) -> &[String] {
        &self.remote_ports
    }

    /// Leave the IP layer's forward chain out: for a bridge with remote
    /// ports, where the addresses of the containers on other hosts are not
    /// known here and br_netfilter would show the IP layer bridged frames
    /// without the ports they came in on. The bridge layer alone judges
    /// traffic between containers then (what reaches the host is still the
    /// input chain's).
    pub fn without_ip_forward(mut self) -> Policy {
        self.ip_forward = false;
        self
    }

    /// Whether the IP layer judges forwarded traffic (see
    /// [`without_ip_forward`](Self::without_ip_forward)).
    pub fn ip_forward(&self) -> bool {
        self.ip_forward
    }

    /// Services the containers may not send to anywhere, whatever else
    /// allows it, host included: a Swarm's VXLAN port (4789/udp), so a
    /// container cannot inject frames into an overlay on another node.
    pub fn with_blocked_outbound(mut self, services: impl IntoIterator<Item = Service>) -> Policy {
        self.blocked_outbound = sorted(services);
        self
    }

    /// The services blocked outbound, sorted.
    pub fn blocked_outbound(&self) -> &[Service] {
        &self.blocked_outbound
    }
}

fn sorted(services: impl IntoIterator<Item = Service>) -> Vec<Service> {
    let mut v: Vec<Service> = services.into_iter().collect();
    v.sort();
    v.dedup();
    v
}

/// An interface name the kernel accepts: 1 to 15 bytes, no `/`, `:`,
/// NUL or whitespace, not `.` or `..`.
pub(crate) fn check_ifname(name: &str) -> Result<(), PolicyError> {
    let bad = |why| Err(PolicyError::InvalidPort(name.to_string(), why));
    if name.is_empty() || name.len() > 15 {
        return bad("an interface name has 1 to 15 characters");
    }
    // Hundreds of names on every event: one pass over the bytes when they
    // are ASCII (as names made by runtimes are), else by characters (the
    // kernel refuses Unicode whitespace too).
    let forbidden = if name.is_ascii() {
        name.bytes()
            .any(|b| matches!(b, b'/' | b':' | 0) || b.is_ascii_whitespace() || b == 0x0b)
    } else {
        name.contains(['/', ':', '\0']) || name.contains(char::is_whitespace)
    };
    if name == "." || name == ".." || forbidden {
        return bad("not a valid interface name");
    }
    Ok(())
}

/// The smallest value two ports claim, with the two ports' indexes.
fn first_shared<K: Ord + Copy>(
    mut claims: Vec<(K, usize)>,
    claim: impl Fn(K) -> Claim,
) -> Option<(Claim, usize, usize)> {
    claims.sort_unstable();
    claims
        .windows(2)
        .find(|w| w[0].0 == w[1].0)
        .map(|w| (claim(w[0].0), w[0].1, w[1].1))
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What a port claims as its own (a MAC as its key, an address as its
/// number), for the error that names it.
#[derive(Clone, Copy)]
enum Claim {
    Mac(u64),
    V4(u32),
    V6(u128),
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Claim::Mac(k) => {
                let mut m = [0u8; 6];
                m.copy_from_slice(&k.to_be_bytes()[2..]);
                write!(f, "{}", crate::model::Value::Ether(m))
            }
            Claim::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(a)),
            Claim::V6(a) => write!(f, "{}", std::net::Ipv6Addr::from(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_names_are_judged_as_by_characters() {
        let by_chars = |n: &str| {
            n == "." || n == ".." || n.contains(['/', ':', '\0']) || n.contains(char::is_whitespace)
        };
        for b in 0u8..=127 {
            for name in [format!("veth{}", b as char), format!("{}", b as char)] {
                assert_eq!(
                    check_ifname(&name).is_err(),
                    by_chars(&name),
                    "byte {b:#04x}"
                );
            }
        }
        for name in ["vethé", "veth\u{85}", "a\u{3000}b", "br-ü"] {
            assert_eq!(check_ifname(name).is_err(), by_chars(name), "{name:?}");
        }
    }
}
