//! Which container has which addresses on which bridge, kept in a
//! directory (default `/run/trafficjam-cni`: on tmpfs, so it goes at
//! reboot together with the kernel's rules). Runtimes call plugins in
//! parallel: every invocation holds an exclusive lock on the directory
//! from reading the state to writing it back, so no update is lost.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

use trafficjam_core::isolation::{Bridge, Exceptions, IngressPolicy};
use trafficjam_core::model::parse_mac;
use trafficjam_core::{Allowed, Port, Role, Service};

use crate::error::PluginError;

/// The default state directory.
pub const DEFAULT_DIR: &str = "/run/trafficjam-cni";

/// One container attachment (a container id and interface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Its addresses, with prefix length.
    pub addresses: Vec<IpNet>,
    /// The host side of its veth, if known.
    pub port: Option<String>,
    /// The MAC address of its interface, if known (`02:42:ac:11:00:02`).
    #[serde(default)]
    pub mac: Option<String>,
    /// Whether it may open connections to the others (proxy-only).
    pub whitelisted: bool,
}

/// A managed bridge: its configuration and its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeState {
    /// What is allowed inside it.
    pub ingress_policy: IngressPolicy,
    /// Whether its containers may reach the host.
    pub allow_host_traffic: bool,
    /// Its containers, by `containerid/ifname`.
    pub members: BTreeMap<String, Member>,
    /// The exceptions its network declares (the same for every network on
    /// the bridge).
    #[serde(default)]
    pub exceptions: Declared,
}

/// The exceptions of a network's configuration: `allow`
/// (`FROM->TO[:PORTS]` between container addresses), `allowToProxy` and
/// `allowHostPorts` (`PORT/PROTO`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Declared {
    /// Flows between containers, by address.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Services of the whitelisted containers open to every container.
    #[serde(default)]
    pub allow_to_proxy: Vec<String>,
    /// Services of the host open to the containers.
    #[serde(default)]
    pub allow_host_ports: Vec<String>,
}

impl Declared {
    /// Check every entry, for a configuration error before anything is
    /// enrolled.
    pub fn validate(&self) -> Result<(), String> {
        for a in &self.allow {
            parse_allow(a)?;
        }
        for s in self.allow_to_proxy.iter().chain(&self.allow_host_ports) {
            s.parse::<Service>()?;
        }
        Ok(())
    }
}

/// `FROM->TO[:PORTS]` with IPv4 or bracketed IPv6 addresses.
fn parse_allow(s: &str) -> Result<(IpAddr, IpAddr, Vec<Service>), String> {
    let (from, rest) = s
        .split_once("->")
        .ok_or_else(|| format!("allow {s:?} is not FROM->TO[:PORTS]"))?;
    let (to, ports) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (a, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("allow {s:?}: unclosed ["))?;
            (a, after.strip_prefix(':'))
        }
        None if rest.matches(':').count() == 1 => {
            let (a, p) = rest.split_once(':').unwrap_or((rest, ""));
            (a, Some(p))
        }
        None => (rest, None),
    };
    let ip = |x: &str| {
        x.trim()
            .parse::<IpAddr>()
            .map_err(|e| format!("allow {s:?}: {x:?}: {e}"))
    };
    let services = match ports {
        None => Vec::new(),
        Some(p) => p
            .split(',')
            .map(|x| x.parse::<Service>())
            .collect::<Result<_, _>>()?,
    };
    Ok((ip(from)?, ip(to)?, services))
}

impl BridgeState {
    /// The engine's view of this bridge.
    pub fn bridge(&self, name: &str) -> Bridge {
        let mut subnets: Vec<IpNet> = self
            .members
            .values()
            .flat_map(|m| m.addresses.iter().map(|a| a.trunc()))
            .collect();
        subnets.sort();
        subnets.dedup();
        let white: Vec<&Member> = self.members.values().filter(|m| m.whitelisted).collect();
        let ports: Vec<Port> = self
            .members
            .values()
            .filter_map(|m| {
                Some(Port {
                    name: m.port.clone()?,
                    role: if m.whitelisted {
                        Role::Proxy
                    } else {
                        Role::Backend
                    },
                    mac: m.mac.as_deref().and_then(parse_mac)?,
                    addrs: m.addresses.iter().map(|a| a.addr()).collect(),
                })
            })
            .collect();
        // Allowed flows between the ports holding the addresses; an
        // address no container holds (yet) allows nothing.
        let port_of = |ip: &IpAddr| {
            ports
                .iter()
                .find(|p| p.addrs.contains(ip))
                .map(|p| p.name.clone())
        };
        let allowed = self
            .exceptions
            .allow
            .iter()
            .filter_map(|a| parse_allow(a).ok())
            .filter_map(|(from, to, services)| {
                Some(Allowed {
                    from: port_of(&from)?,
                    to: port_of(&to)?,
                    services,
                })
            })
            .collect();
        let services = |v: &[String]| v.iter().filter_map(|s| s.parse().ok()).collect();
        let exceptions = Exceptions {
            allowed,
            proxy_services: services(&self.exceptions.allow_to_proxy),
            host_services: services(&self.exceptions.allow_host_ports),
        };
        Bridge {
            name: name.to_string(),
            ingress: self.ingress_policy,
            allow_host_traffic: self.allow_host_traffic,
            subnets,
            whitelist: white
                .iter()
                .flat_map(|m| m.addresses.iter().map(|a| a.addr()))
                .collect(),
            // A container is bound to its port where both the port and
            // its MAC are known (the `bridge` plugin reports both).
            ports,
            exceptions,
        }
    }
}

/// The state directory, locked for the life of this value.
pub struct Store {
    dir: PathBuf,
    _lock: Flock<File>,
    /// Every managed bridge, by name.
    pub bridges: BTreeMap<String, BridgeState>,
}

impl Store {
    /// Lock the directory (waiting for other invocations) and read it.
    pub fn open(dir: &Path) -> Result<Store, PluginError> {
        let io = |what: &str, e| PluginError::io(format!("{what} {}", dir.display()), e);
        fs::create_dir_all(dir.join("bridges"))
            .map_err(|e| io("creating the state directory", e))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| io("opening the lock of", e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io("locking", errno.into()))?;
        let mut bridges = BTreeMap::new();
        for entry in fs::read_dir(dir.join("bridges")).map_err(|e| io("reading", e))? {
            let path = entry.map_err(|e| io("reading", e))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let bytes = fs::read(&path).map_err(|e| io("reading", e))?;
            let state: BridgeState = serde_json::from_slice(&bytes)
                .map_err(|e| PluginError::Decode(format!("state file {}: {e}", path.display())))?;
            bridges.insert(name.to_string(), state);
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
            bridges,
        })
    }

    /// Write bridge `name` back (or remove its file when it has no
    /// container left); write-then-rename, so a crash leaves the old or
    /// the new state, never half of one.
    pub fn save(&self, name: &str) -> Result<(), PluginError> {
        let path = self.dir.join("bridges").join(format!("{name}.json"));
        let io = |e| PluginError::io(format!("writing {}", path.display()), e);
        match self.bridges.get(name) {
            Some(state) if !state.members.is_empty() => {
                let tmp = path.with_extension("json.tmp");
                let bytes = serde_json::to_vec_pretty(state).map_err(|e| io(e.into()))?;
                fs::write(&tmp, bytes).map_err(io)?;
                fs::rename(&tmp, &path).map_err(io)
            }
            _ => match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
                _ => Ok(()),
            },
        }
    }

    /// Every bridge with at least one container, for the engine.
    pub fn managed(&self) -> Vec<Bridge> {
        self.bridges
            .iter()
            .filter(|(_, s)| !s.members.is_empty())
            .map(|(name, s)| s.bridge(name))
            .collect()
    }

    /// Forget a container attachment; the bridge it was on, if any.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.bridges
            .iter_mut()
            .find_map(|(b, s)| s.members.remove(key).map(|_| b.clone()))
    }

    /// The bridge and key of a container attachment, if it is managed.
    pub fn find(&self, key: &str) -> Option<(&str, &Member)> {
        self.bridges
            .iter()
            .find_map(|(b, s)| s.members.get(key).map(|m| (b.as_str(), m)))
    }
}
