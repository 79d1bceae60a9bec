//! Every way a command can fail, with what the user should do about it.

use std::path::PathBuf;

use trafficjam_core::wire::DecodeError;
use trafficjam_core::PolicyError;
use trafficjam_netlink::NetlinkError;

/// A command failure. The process exits non-zero for every variant.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The requested policy is invalid; nothing was sent to the kernel.
    #[error("{0} (nothing was changed)")]
    Policy(#[from] PolicyError),
    /// `--netns` names a namespace that does not exist.
    #[error("network namespace {0} does not exist (create it with `ip netns add`, or pass /proc/PID/ns/net of a running process); nothing was changed")]
    NoNamespace(PathBuf),
    /// The kernel or the socket failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// The kernel's answer could not be decoded.
    #[error("could not read the kernel's answer: {0}")]
    Decode(#[from] DecodeError),
    /// Docker could not tell what to enforce.
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    /// `check` found a requirement that does not hold.
    #[error("check failed: {0} (see above)")]
    CheckFailed(String),
    /// The instance id is one trafficjam-cni uses for its tables.
    #[error("instance id {0:?} is reserved for trafficjam-cni's tables (cni, cni-*); choose another with --instance (nothing was changed)")]
    ReservedInstance(String),
    /// Static mode: no interface holds an address of the subnets.
    #[error("no interface holds an address in {0}: name the managed bridge with --bridge IFNAME (nothing was changed)")]
    NoBridge(String),
    /// Static mode: several interfaces hold addresses of the subnets.
    #[error("several interfaces hold addresses in the subnets ({0}): choose the managed bridge with --bridge IFNAME (nothing was changed)")]
    AmbiguousBridge(String),
    /// Static mode: a port was named that the bridge does not have and
    /// whose MAC is not given.
    #[error("{0}: bridge {1} has no such port; give its MAC and addresses with --port {0}=MAC,IP (nothing was changed)")]
    UnknownPort(String, String),
    /// Static mode: an `--allow` address no port of the bridge holds.
    #[error("--allow {0}: no port of bridge {1} holds this address (nothing was changed)")]
    UnknownAddress(std::net::IpAddr, String),
    /// Static mode: a veth port whose container side cannot be read.
    #[error("cannot read the container side of port {0} of bridge {1} (its MAC and addresses): this needs CAP_NET_ADMIN; run as root or give them with --port {0}=MAC,IP (nothing was changed)")]
    UnreadablePort(String, String),
    /// The metrics endpoint could not listen.
    #[error("cannot serve metrics on {0}: {1} (choose another address with --metrics ADDR)")]
    Metrics(std::net::SocketAddr, #[source] std::io::Error),
    /// Writing JSON failed.
    #[error("could not write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl CliError {
    /// The exit code: 2 for bad input (like clap's usage errors), 1 for
    /// everything that went wrong at run time.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Policy(_)
            | CliError::NoNamespace(_)
            | CliError::ReservedInstance(_)
            | CliError::NoBridge(_)
            | CliError::AmbiguousBridge(_)
            | CliError::UnknownPort(..)
            | CliError::UnknownAddress(..)
            | CliError::UnreadablePort(..) => 2,
            CliError::Docker(e) if e.is_bad_input() => 2,
            _ => 1,
        }
    }
}
