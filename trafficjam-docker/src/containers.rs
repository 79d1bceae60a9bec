//! What the daemon knows of every container — name, image, labels — kept
//! up to date from Docker's event stream, so that whitelist filters and
//! allow labels are matched without asking Docker on every event (and
//! before Docker's own container list shows a container being started).

use std::collections::HashMap;

use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::ListContainersOptions;

use super::filter::Container;
use super::{DockerClient, DockerError};

/// Event attributes that are not labels.
const NOT_LABELS: [&str; 2] = ["image", "name"];

/// Every container Docker has, by id.
#[derive(Debug, Clone, Default)]
pub struct Containers(HashMap<String, Container>);

impl Containers {
    /// Every container, running or not, as Docker lists them now.
    pub async fn load(client: &DockerClient) -> Result<Containers, DockerError> {
        let opts = ListContainersOptions {
            all: true,
            ..Default::default()
        };
        crate::count_api_call();
        let listed = client
            .api()
            .list_containers(Some(opts))
            .await
            .map_err(|e| DockerError::api(client.host(), "listing containers", e))?;
        let mut known = HashMap::new();
        for c in listed {
            let Some(id) = c.id else { continue };
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            known.insert(
                id.clone(),
                Container {
                    id,
                    name,
                    image: c.image.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default().into_iter().collect(),
                },
            );
        }
        Ok(Containers(known))
    }

    /// What is known of container `id`.
    pub fn get(&self, id: &str) -> Option<&Container> {
        self.0.get(id)
    }

    /// Learn from a container event: `create` tells the name, image and
    /// every label (as attributes); `rename` the new name; `destroy` that
    /// it is gone.
    pub fn learn(&mut self, ev: &EventMessage) {
        if ev.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return;
        }
        let Some(actor) = &ev.actor else { return };
        let Some(id) = actor.id.clone() else { return };
        let attrs = actor.attributes.clone().unwrap_or_default();
        match ev.action.as_deref() {
            Some("create") => {
                let labels = attrs
                    .iter()
                    .filter(|(k, _)| !NOT_LABELS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.0.insert(
                    id.clone(),
                    Container {
                        id,
                        name: attrs.get("name").cloned().unwrap_or_default(),
                        image: attrs.get("image").cloned().unwrap_or_default(),
                        labels,
                    },
                );
            }
            Some("rename") => {
                if let (Some(c), Some(name)) = (self.0.get_mut(&id), attrs.get("name")) {
                    c.name = name.clone();
                }
            }
            Some("destroy") => {
                self.0.remove(&id);
            }
            _ => {}
        }
    }

    /// Whether none is known.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn event(action: &str, id: &str, attrs: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some(id.into()),
                attributes: Some(
                    attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn events_keep_the_containers() {
        let mut c = Containers::default();
        c.learn(&event(
            "create",
            "abc",
            &[
                ("name", "traefik"),
                ("image", "traefik:3"),
                ("role", "proxy"),
            ],
        ));
        let t = c.get("abc").unwrap();
        assert_eq!(
            (t.name.as_str(), t.image.as_str()),
            ("traefik", "traefik:3")
        );
        assert_eq!(t.labels.get("role").map(String::as_str), Some("proxy"));
        assert!(!t.labels.contains_key("name"));
        c.learn(&event(
            "rename",
            "abc",
            &[("name", "edge"), ("oldName", "/traefik")],
        ));
        assert_eq!(c.get("abc").unwrap().name, "edge");
        c.learn(&event("destroy", "abc", &[]));
        assert!(c.is_empty());
    }
}
