//! Following a network one event at a time: a container connected is one
//! Docker API call (its endpoint; none for the whitelist when the filters
//! can be matched here, as they are from the container's `create` event),
//! a container disconnected is none.
//! The network is listed whole only at start, at every poll and when
//! something else changed (the network itself).

use std::net::IpAddr;

use bollard::query_parameters::{InspectNetworkOptions, ListContainersOptions};
use trafficjam_core::model::parse_mac;

use super::discover::{endpoint_addrs, Endpoint};
use super::filter::{self, Container, Filter};
use super::{Discovery, DockerClient, DockerError};

/// A container being connected, as Docker reports it.
pub struct Joining {
    /// Its endpoint on the network (no port yet).
    pub endpoint: Endpoint,
    /// Its name, image and labels.
    pub container: Container,
}

impl DockerClient {
    /// Container `id`'s endpoint on `network`, as the network reports it
    /// (one API call); `None` when it is not (or no longer) on it. Not the
    /// container's own inspection: Docker holds a starting container's
    /// lock until its process runs, and a proxy must be bound before that.
    /// Its name, image and labels come from `known` (learnt from its
    /// `create` event), else from Docker's container list.
    pub async fn joining(
        &self,
        id: &str,
        network: &Discovery,
        known: Option<&Container>,
    ) -> Result<Option<Joining>, DockerError> {
        crate::count_api_call();
        let net = self
            .api()
            .inspect_network(&network.id, None::<InspectNetworkOptions>)
            .await
            .map_err(|e| DockerError::api(self.host(), "inspecting the network", e))?;
        let Some(ep) = net.containers.and_then(|mut c| c.remove(id)) else {
            return Ok(None);
        };
        let addrs: Vec<IpAddr> = endpoint_addrs(&ep)
            .into_iter()
            .filter(|a| network.subnets.iter().any(|s| s.contains(a)))
            .collect();
        let container = match known {
            Some(c) => c.clone(),
            None => match self.container(id).await? {
                Some(c) => c,
                None => return Ok(None),
            },
        };
        Ok(Some(Joining {
            endpoint: Endpoint {
                name: ep.name.clone().unwrap_or_else(|| container.name.clone()),
                id: id.to_string(),
                addrs,
                mac: ep.mac_address.as_deref().and_then(parse_mac),
                port: None,
            },
            container,
        }))
    }

    /// One container from Docker's list (which, unlike its inspection,
    /// does not wait for a container being started).
    async fn container(&self, id: &str) -> Result<Option<Container>, DockerError> {
        crate::count_api_call();
        let mut f = std::collections::HashMap::new();
        f.insert("id".to_string(), vec![id.to_string()]);
        let listed = self
            .api()
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(f),
                ..Default::default()
            }))
            .await
            .map_err(|e| DockerError::api(self.host(), "listing a container", e))?;
        Ok(listed
            .into_iter()
            .find(|c| c.id.as_deref() == Some(id))
            .map(|c| Container {
                id: id.to_string(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
            }))
    }

    /// Whether `c`, on network `network_id`, matches any of `filters`:
    /// decided here when the filters allow it, else by Docker.
    pub async fn whitelists(
        &self,
        c: &Container,
        network_id: &str,
        filters: &[(String, String)],
    ) -> Result<bool, DockerError> {
        let parsed: Vec<Filter> = filters.iter().map(|(k, v)| Filter::new(k, v)).collect();
        match filter::any_matches(&parsed, c) {
            Some(decided) => Ok(decided),
            None => Ok(self
                .list_matching(network_id, filters)
                .await?
                .contains(&c.id)),
        }
    }
}

impl Discovery {
    /// A container joined the network (or was seen again): its endpoint,
    /// replacing any earlier one, and whether it is whitelisted.
    pub fn connect(&mut self, joining: Joining, whitelisted: bool) {
        let Joining {
            endpoint,
            container,
        } = joining;
        self.disconnect(&endpoint.id);
        for a in &endpoint.addrs {
            self.names.insert(*a, endpoint.name.clone());
        }
        self.containers.insert(container.id.clone(), container);
        if whitelisted {
            self.whitelist.push(endpoint.clone());
            self.whitelist.sort();
        }
        self.endpoints.push(endpoint);
        self.endpoints.sort();
    }

    /// A container left the network; returns whether it was on it.
    pub fn disconnect(&mut self, id: &str) -> bool {
        let Some(i) = self.endpoints.iter().position(|e| e.id == id) else {
            return false;
        };
        let gone = self.endpoints.remove(i);
        for a in &gone.addrs {
            if self.names.get(a) == Some(&gone.name) {
                self.names.remove(a);
            }
        }
        self.whitelist.retain(|w| w.id != id);
        self.containers.remove(id);
        true
    }

    /// Whether the event's network (its id, or its name) is this one.
    pub fn is(&self, network: &str) -> bool {
        network == self.id || network == self.network
    }

    /// A container on the network was renamed: its allow labels may name
    /// it (`name=`), and the log lines do.
    pub fn rename(&mut self, id: &str, name: &str) -> bool {
        let mut found = false;
        for e in self.endpoints.iter_mut().chain(self.whitelist.iter_mut()) {
            if e.id == id {
                for a in &e.addrs {
                    self.names.insert(*a, name.to_string());
                }
                e.name = name.to_string();
                found = true;
            }
        }
        if let Some(c) = self.containers.get_mut(id) {
            c.name = name.to_string();
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joining(name: &str, last: u8) -> Joining {
        Joining {
            endpoint: Endpoint {
                name: name.into(),
                id: format!("id-{name}"),
                addrs: vec![format!("172.23.0.{last}").parse().unwrap()],
                mac: Some([2, 0x42, 0xac, 0x17, 0, last]),
                port: None,
            },
            container: Container {
                id: format!("id-{name}"),
                name: name.into(),
                image: "img".into(),
                labels: Default::default(),
            },
        }
    }

    fn empty() -> Discovery {
        Discovery {
            network: "web".into(),
            id: "abc".into(),
            subnets: vec!["172.23.0.0/16".parse().unwrap()],
            bridge: "br-abc".into(),
            whitelist: vec![],
            endpoints: vec![],
            unidentified: vec![],
            bridge_index: None,
            containers: Default::default(),
            names: Default::default(),
            driver: Default::default(),
            remote: vec![],
            overlay_bridges: vec![],
        }
    }

    #[test]
    fn connect_disconnect_and_rename_keep_the_discovery_whole() {
        let mut d = empty();
        d.connect(joining("proxy", 2), true);
        d.connect(joining("app", 3), false);
        // Seen again (a second connect event): replaced, not doubled.
        d.connect(joining("app", 3), false);
        assert_eq!(d.endpoints.len(), 2);
        assert_eq!(d.whitelist.len(), 1);
        assert_eq!(d.names.len(), 2);
        assert!(d.rename("id-app", "api"));
        assert_eq!(d.names[&"172.23.0.3".parse::<IpAddr>().unwrap()], "api");
        assert_eq!(d.containers["id-app"].name, "api");
        assert!(d.disconnect("id-proxy"));
        assert!(!d.disconnect("id-proxy"));
        assert!(d.whitelist.is_empty());
        assert_eq!(d.names.len(), 1);
        assert!(d.is("abc") && d.is("web") && !d.is("other"));
    }
}
