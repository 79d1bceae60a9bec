//! Failures, with the CNI error codes the runtime reads.

use trafficjam_core::isolation::IsolationError;
use trafficjam_netlink::NetlinkError;

/// Everything that can make an invocation fail.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The configuration's `cniVersion` is not one this plugin speaks.
    #[error("incompatible CNI version {0}: trafficjam-cni speaks 0.3.0, 0.3.1, 0.4.0 and 1.0.0")]
    Version(String),
    /// A required environment variable is missing or invalid.
    #[error("{0}")]
    Environment(String),
    /// stdin or `prevResult` could not be decoded.
    #[error("cannot decode the configuration: {0}")]
    Decode(String),
    /// The configuration is valid JSON but not usable.
    #[error("invalid network configuration: {0}")]
    Config(String),
    /// The state directory could not be used.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The isolation the invocation would lead to is invalid.
    #[error("{0}")]
    Isolation(#[from] IsolationError),
    /// The kernel refused or could not be reached.
    #[error("{0}")]
    Kernel(#[from] NetlinkError),
    /// CHECK found the container's rules missing or altered.
    #[error("{0}")]
    Check(String),
}

impl PluginError {
    /// The CNI error code: 1 version, 4 environment, 5 I/O, 6 decode,
    /// 7 configuration; 100 and up are this plugin's own: 100 the kernel
    /// refused, 101 CHECK failed.
    pub fn code(&self) -> u32 {
        match self {
            PluginError::Version(_) => 1,
            PluginError::Environment(_) => 4,
            PluginError::Io { .. } => 5,
            PluginError::Decode(_) => 6,
            PluginError::Config(_) | PluginError::Isolation(_) => 7,
            PluginError::Kernel(_) => 100,
            PluginError::Check(_) => 101,
        }
    }

    /// The `details` field: what to do about it.
    pub fn details(&self) -> String {
        match self {
            PluginError::Kernel(e) if e.is_permission_denied() => {
                "the runtime must run CNI plugins as root (CAP_NET_ADMIN)".into()
            }
            PluginError::Kernel(_) => "trafficjam-cni changes nothing unless the whole change is accepted; retry, or inspect with `nft list ruleset`".into(),
            PluginError::Check(_) => "DEL and ADD the container again to restore its rules".into(),
            PluginError::Version(_) => "set \"cniVersion\" of the network to a supported version".into(),
            _ => String::new(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> PluginError {
        PluginError::Io {
            context: context.into(),
            source,
        }
    }
}
