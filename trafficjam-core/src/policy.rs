//! The isolation policy: what must hold on one managed network.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

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
    /// A whitelisted bridge port name is not a valid interface name.
    #[error("invalid bridge port {0:?}: {1}")]
    InvalidPort(String, &'static str),
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

/// What trafficjam enforces on one managed network.
///
/// For subnets S and whitelisted addresses W: new connections from W into
/// S are allowed; new connections from the rest of S into S are dropped;
/// new connections from S to the host itself are dropped unless
/// `allow_host_traffic`; established traffic, IPv6 neighbour discovery and
/// everything else are left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    instance: InstanceId,
    subnets: Vec<IpNet>,
    whitelist: Vec<IpAddr>,
    allow_host_traffic: bool,
    whitelist_ports: Vec<String>,
    log_per_second: Option<u32>,
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
            whitelist_ports: Vec::new(),
            log_per_second: None,
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

    /// Bind the whitelisted addresses to these bridge ports (the host side
    /// of the proxy's veth): a frame from any other port that claims a
    /// whitelisted source address, spoofed IP or spoofed MAC alike, is
    /// dropped at the bridge layer. Without ports, no such binding is made.
    pub fn with_whitelist_ports(
        mut self,
        ports: impl IntoIterator<Item = String>,
    ) -> Result<Policy, PolicyError> {
        let mut ports: Vec<String> = ports.into_iter().collect();
        for p in &ports {
            let bad = |why| Err(PolicyError::InvalidPort(p.clone(), why));
            if p.is_empty() || p.len() > 15 {
                return bad("an interface name has 1 to 15 characters");
            }
            if p == "."
                || p == ".."
                || p.contains(['/', ':', '\0'])
                || p.contains(char::is_whitespace)
            {
                return bad("not a valid interface name");
            }
        }
        ports.sort();
        ports.dedup();
        self.whitelist_ports = ports;
        Ok(self)
    }

    /// The bridge ports the whitelisted addresses are bound to.
    pub fn whitelist_ports(&self) -> &[String] {
        &self.whitelist_ports
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
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
