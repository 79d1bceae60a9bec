//! Allowed flows declared where users already configure things: Docker
//! labels on the container the flows go to.
//!
//! ```yaml
//! labels:
//!   trafficjam.allow-from: "name=nextcloud,com.docker.compose.service=cron"
//!   trafficjam.allow-ports: "5432/tcp"
//! ```
//!
//! `allow-from` is a comma-separated list of Docker filters, OR-ed as the
//! whitelist's are (`name=`, `id=`, `label=KEY[=VALUE]`, `ancestor=`); any
//! other `KEY=VALUE` means the label KEY is VALUE (compose's
//! `com.docker.compose.service=cron`). Unlike Docker's filters, `name=` is
//! the whole name and `id=` a prefix of the id: an opening is never given
//! to every container whose name merely contains a word. `allow-ports` limits the flows to
//! those services; without it, any service of the container. A label that
//! does not parse is reported and ignored: the container stays closed.

use trafficjam_core::Service;

use super::filter::{Container, Filter};

/// The label naming who may open connections to a container.
pub const ALLOW_FROM: &str = "trafficjam.allow-from";
/// The label limiting those connections to some services.
pub const ALLOW_PORTS: &str = "trafficjam.allow-ports";

/// What a container's labels allow into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowLabels {
    /// Who may open connections (any of them).
    pub from: Vec<Filter>,
    /// To which services; empty for any.
    pub services: Vec<Service>,
}

impl AllowLabels {
    /// The allow labels of `c`: `Ok(None)` without any, an error (to be
    /// reported with the container's name) when one does not parse.
    pub fn of(c: &Container) -> Result<Option<AllowLabels>, String> {
        let ports = c.labels.get(ALLOW_PORTS);
        let Some(from) = c.labels.get(ALLOW_FROM) else {
            return match ports {
                Some(_) => Err(format!(
                    "{ALLOW_PORTS} without {ALLOW_FROM}: nothing is allowed"
                )),
                None => Ok(None),
            };
        };
        let mut filters = Vec::new();
        for part in from.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                format!("{ALLOW_FROM}: {part:?} is not KEY=VALUE (e.g. name=nextcloud)")
            })?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || value.is_empty() {
                return Err(format!("{ALLOW_FROM}: {part:?} has an empty key or value"));
            }
            let unanchored = |v: &str| v.trim_start_matches('^').trim_end_matches('$').to_string();
            filters.push(match Filter::new(key, value) {
                // Not a filter key: the label of that name.
                Filter::Other(k, v) => Filter::Label(k, Some(v)),
                Filter::Name(n) => Filter::Name(format!("^{}$", unanchored(&n))),
                Filter::Id(i) => Filter::Id(format!("^{}", unanchored(&i))),
                f => f,
            });
        }
        if filters.is_empty() {
            return Err(format!("{ALLOW_FROM} is empty"));
        }
        let services = match ports {
            None => Vec::new(),
            Some(p) => p
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<Service>()
                        .map_err(|e| format!("{ALLOW_PORTS}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(Some(AllowLabels {
            from: filters,
            services,
        }))
    }

    /// Whether `c` has an allow label at all (well-formed or not).
    pub fn declared(c: &Container) -> bool {
        // Asked of every container on every event: one search of the
        // sorted labels finds either (`allow-from` sorts just before
        // `allow-ports`), a second only when a label sorts between them.
        use std::ops::Bound;
        let next = c
            .labels
            .range::<str, _>((Bound::Included(ALLOW_FROM), Bound::Unbounded))
            .next()
            .map(|(k, _)| k.as_str());
        match next {
            Some(k) if k == ALLOW_FROM || k == ALLOW_PORTS => true,
            Some(k) if k < ALLOW_PORTS => c.labels.contains_key(ALLOW_PORTS),
            _ => false,
        }
    }

    /// Whether `source` may open connections: it matches a filter, as far
    /// as can be told here (undecidable filters do not allow).
    pub fn admits(&self, source: &Container) -> bool {
        self.from.iter().any(|f| f.matches(source) == Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, labels: &[(&str, &str)]) -> Container {
        Container {
            id: format!("id-{name}"),
            name: name.into(),
            image: "img".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn declared_finds_either_label_among_any_others() {
        let others = [
            ("a", "1"),
            ("trafficjam.allow", "x"),
            ("trafficjam.allow-other", "x"),
            ("trafficjam.allow-portsx", "x"),
            ("z", "1"),
        ];
        for n in 0..=others.len() {
            let base: Vec<(&str, &str)> = others[..n].to_vec();
            assert!(!AllowLabels::declared(&c("x", &base)), "{base:?}");
            for key in [ALLOW_FROM, ALLOW_PORTS] {
                let mut with = base.clone();
                with.push((key, "v"));
                assert!(AllowLabels::declared(&c("x", &with)), "{with:?}");
            }
        }
    }

    #[test]
    fn labels_parse_into_filters_and_services() {
        let db = c(
            "db",
            &[
                (
                    ALLOW_FROM,
                    "name=nextcloud, com.docker.compose.service=cron",
                ),
                (ALLOW_PORTS, "5432/tcp,53/udp"),
            ],
        );
        let a = AllowLabels::of(&db).unwrap().unwrap();
        assert_eq!(a.services, [Service::tcp(5432), Service::udp(53)]);
        assert!(a.admits(&c("nextcloud", &[])));
        assert!(a.admits(&c("x", &[("com.docker.compose.service", "cron")])));
        assert!(!a.admits(&c("web", &[])));
        // The whole name, not a part of it.
        assert!(!a.admits(&c("nextcloud-evil", &[])));
        assert!(!a.admits(&c("my-nextcloud", &[])));
        assert_eq!(AllowLabels::of(&c("plain", &[])), Ok(None));
    }

    #[test]
    fn bad_labels_are_errors_never_half_applied() {
        for labels in [
            &[(ALLOW_FROM, "nextcloud")][..],
            &[(ALLOW_FROM, "name=")][..],
            &[(ALLOW_FROM, " , ")][..],
            &[(ALLOW_FROM, "name=a"), (ALLOW_PORTS, "5432/sctp")][..],
            &[(ALLOW_FROM, "name=a"), (ALLOW_PORTS, "http")][..],
            &[(ALLOW_PORTS, "5432")][..],
        ] {
            assert!(AllowLabels::of(&c("db", labels)).is_err(), "{labels:?}");
        }
    }
}
