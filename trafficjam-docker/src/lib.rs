//! The Docker side of trafficjam: what a Docker network is made of, as
//! policies the rule engine ([`trafficjam_core`]) compiles.
//!
//! - [`Discovery`] reads a network whole (subnets, bridge, endpoints with
//!   their MACs and addresses, which containers the whitelist filters
//!   match, the allow labels) and turns it into a [`trafficjam_core::Policy`];
//! - [`follow`] keeps it up to date from Docker's events, one container at a
//!   time, without listing the network again;
//! - [`ports`] finds each endpoint's bridge port over rtnetlink
//!   ([`trafficjam_netlink::RouteSocket`]) and notices ports appearing and
//!   moving.
//!
//! Everything talks to the Engine over its local socket or `DOCKER_HOST`
//! through [`DockerClient`]; every request it sends is counted
//! ([`api_calls`]), so a daemon can show what an event cost.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod allow;
pub mod containers;
pub mod discover;
mod error;
pub mod filter;
pub mod follow;
pub mod overlay;
pub mod ports;

pub use discover::{Discovery, Driver};
pub use error::DockerError;

use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;

/// Requests sent to the Docker API by this process (the event stream counts
/// once).
static API_CALLS: AtomicU64 = AtomicU64::new(0);

/// How many requests this process has sent to the Docker API so far.
pub fn api_calls() -> u64 {
    API_CALLS.load(Ordering::Relaxed)
}

pub(crate) fn count_api_call() {
    API_CALLS.fetch_add(1, Ordering::Relaxed);
}

/// A connection to the Docker API, with the address used (for messages).
#[derive(Clone)]
pub struct DockerClient {
    docker: Docker,
    host: String,
}

impl DockerClient {
    /// Connect as the docker CLI does: `DOCKER_HOST` (`unix://…` or
    /// `tcp://…`, e.g. a socket proxy), else `/var/run/docker.sock`; then
    /// agree on an API version the daemon speaks.
    pub async fn connect() -> Result<DockerClient, DockerError> {
        let host = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        let unreachable = |reason: String| DockerError::Unreachable {
            host: host.clone(),
            reason,
        };
        let docker = Docker::connect_with_host(&host).map_err(|e| unreachable(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(DockerClient { docker, host })
    }

    /// Where Docker was reached.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The underlying client.
    pub fn api(&self) -> &Docker {
        &self.docker
    }
}
