//! Docker discovery: which subnets a network has and which containers on
//! it are whitelisted, over the local socket or `DOCKER_HOST`.

pub mod allow;
pub mod containers;
pub mod discover;
mod error;
pub mod filter;
pub mod follow;
pub mod ports;

pub use discover::Discovery;
pub use error::DockerError;

use bollard::Docker;

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
