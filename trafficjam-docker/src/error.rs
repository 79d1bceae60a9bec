//! Docker failures, worded for the person running trafficjam.

/// Why Docker could not tell us what to enforce.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The Docker API could not be reached at all.
    #[error("cannot reach Docker at {host}: {reason} (is the daemon running? in a container, mount /var/run/docker.sock or set DOCKER_HOST to a socket proxy)")]
    Unreachable {
        /// `DOCKER_HOST` or the default socket.
        host: String,
        /// What failed.
        reason: String,
    },
    /// The network does not exist.
    #[error("Docker network {0:?} does not exist (see `docker network ls`)")]
    NetworkNotFound(String),
    /// The network has no subnet trafficjam could protect.
    #[error("Docker network {0:?} has no IPAM subnet: there is nothing trafficjam could enforce (create it with --subnet, or let Docker assign one)")]
    NoSubnet(String),
    /// The network is of a kind trafficjam does not manage.
    #[error("Docker network {name:?} uses the {driver:?} driver; trafficjam manages bridge networks (Swarm overlay networks are not supported yet)")]
    UnsupportedDriver {
        /// Network name.
        name: String,
        /// Its driver.
        driver: String,
    },
    /// A whitelist filter is not `key=value`.
    #[error("whitelist filter {0:?} is not of the form key=value (e.g. ancestor=traefik:latest, label=role=proxy, name=traefik)")]
    BadFilter(String),
    /// Docker refused a whitelist filter.
    #[error("Docker rejected the whitelist filter {filter:?}: {message}")]
    FilterRejected {
        /// The filter as given.
        filter: String,
        /// Docker's message.
        message: String,
    },
    /// Docker answered something trafficjam cannot use.
    #[error("unexpected answer from Docker about {what}: {detail}")]
    Unexpected {
        /// What was asked.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// Any other API error.
    #[error("Docker API error while {what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: bollard::errors::Error,
    },
}

impl DockerError {
    /// True when Docker itself is unreachable (the daemon keeps waiting),
    /// rather than answering that something is wrong.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DockerError::Unreachable { .. })
    }

    /// True when the request itself was wrong (unknown network, bad or
    /// rejected filter, a network trafficjam cannot manage): exit code 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            DockerError::NetworkNotFound(_)
                | DockerError::NoSubnet(_)
                | DockerError::UnsupportedDriver { .. }
                | DockerError::BadFilter(_)
                | DockerError::FilterRejected { .. }
        )
    }

    pub(super) fn api(host: &str, what: &str, e: bollard::errors::Error) -> DockerError {
        use bollard::errors::Error as E;
        match e {
            E::DockerResponseServerError { .. } | E::JsonDataError { .. } => DockerError::Api {
                what: what.to_string(),
                source: e,
            },
            other => DockerError::Unreachable {
                host: host.to_string(),
                reason: other.to_string(),
            },
        }
    }
}
