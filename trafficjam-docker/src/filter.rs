//! Docker container filters (`label=…`, `name=…`, `id=…`, `ancestor=…`)
//! matched here, against what trafficjam knows of each container, instead
//! of by asking Docker to list containers.
//!
//! Why: while Docker starts a container it has already plugged it into the
//! network, but its container list does not show it yet — and a proxy's
//! first packet follows at once. What Docker's events said about the
//! container (name, image, labels, all in the `create` event) is enough to
//! decide. Where a filter cannot be decided here (a `name` regular
//! expression, an image's descendants, another filter key), the answer is
//! "don't know" and Docker is asked as before.

use std::collections::BTreeMap;

/// What trafficjam knows of a container, from Docker's list or events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    /// Its full id.
    pub id: String,
    /// Its name, without the leading `/`.
    pub name: String,
    /// The image it was created from, as given (`traefik:latest`).
    pub image: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// One `key=value` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `label=KEY` or `label=KEY=VALUE`.
    Label(String, Option<String>),
    /// `name=NAME`: Docker matches a regular expression against the name.
    Name(String),
    /// `id=ID`: likewise against the id.
    Id(String),
    /// `ancestor=IMAGE`.
    Ancestor(String),
    /// Any other filter: Docker decides.
    Other(String, String),
}

impl Filter {
    /// The filter of a parsed `key=value` pair.
    pub fn new(key: &str, value: &str) -> Filter {
        match key {
            "label" => match value.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
                None => Filter::Label(value.to_string(), None),
            },
            "name" => Filter::Name(value.to_string()),
            "id" => Filter::Id(value.to_string()),
            "ancestor" => Filter::Ancestor(value.to_string()),
            _ => Filter::Other(key.to_string(), value.to_string()),
        }
    }

    /// Whether `c` matches: `Some` when that can be told from what is
    /// known, `None` when only Docker can tell.
    pub fn matches(&self, c: &Container) -> Option<bool> {
        match self {
            Filter::Label(k, None) => Some(c.labels.contains_key(k)),
            Filter::Label(k, Some(v)) => Some(c.labels.get(k) == Some(v)),
            Filter::Name(pattern) => regex_free_match(pattern, &c.name),
            Filter::Id(pattern) => regex_free_match(pattern, &c.id),
            // A match is certain; a non-match may be a descendant image.
            Filter::Ancestor(image) => same_image(image, &c.image).then_some(true),
            Filter::Other(..) => None,
        }
    }
}

/// Docker matches `name` and `id` filters as unanchored regular
/// expressions. Without metacharacters that is a substring test; with
/// only `^` and `$` anchors, a prefix or suffix test; anything else is
/// left to Docker.
fn regex_free_match(pattern: &str, text: &str) -> Option<bool> {
    let core = pattern.strip_prefix('^').unwrap_or(pattern);
    let core = core.strip_suffix('$').unwrap_or(core);
    if core.contains(|c: char| ".*+?()[]{}|\\^$".contains(c)) {
        return None;
    }
    let (start, end) = (pattern.starts_with('^'), pattern.ends_with('$'));
    Some(match (start, end) {
        (true, true) => text == core,
        (true, false) => text.starts_with(core),
        (false, true) => text.ends_with(core),
        (false, false) => text.contains(core),
    })
}

/// Whether two image references name the same image (`traefik` is
/// `traefik:latest`).
fn same_image(a: &str, b: &str) -> bool {
    let tagged = |s: &str| {
        let last = s.rsplit('/').next().unwrap_or(s);
        if last.contains(':') || s.contains('@') {
            s.to_string()
        } else {
            format!("{s}:latest")
        }
    };
    !a.is_empty() && tagged(a) == tagged(b)
}

/// Whether `c` matches any of `filters` (OR-ed, as trafficjam's whitelist
/// filters are): `Some(true)` as soon as one matches, `Some(false)` when
/// every one is known not to, `None` when some are undecidable here and
/// none matched.
pub fn any_matches(filters: &[Filter], c: &Container) -> Option<bool> {
    let mut unknown = false;
    for f in filters {
        match f.matches(c) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => unknown = true,
        }
    }
    (!unknown).then_some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> Container {
        Container {
            id: "3f2a9c1d07e4deadbeef".into(),
            name: "web-traefik-1".into(),
            image: "traefik".into(),
            labels: [("role".to_string(), "proxy".to_string())].into(),
        }
    }

    #[test]
    fn filters_decide_what_they_can() {
        let m = |k, v| Filter::new(k, v).matches(&c());
        assert_eq!(m("label", "role"), Some(true));
        assert_eq!(m("label", "role=proxy"), Some(true));
        assert_eq!(m("label", "role=app"), Some(false));
        assert_eq!(m("name", "traefik"), Some(true));
        assert_eq!(m("name", "^web-"), Some(true));
        assert_eq!(m("name", "^traefik$"), Some(false));
        assert_eq!(m("name", "tra.fik"), None, "a real regular expression");
        assert_eq!(m("id", "3f2a9c"), Some(true));
        assert_eq!(m("ancestor", "traefik:latest"), Some(true));
        assert_eq!(m("ancestor", "nginx"), None, "maybe a descendant");
        assert_eq!(m("status", "running"), None);
    }

    #[test]
    fn or_of_filters() {
        let fs = [
            Filter::new("label", "role=app"),
            Filter::new("name", "traefik"),
        ];
        assert_eq!(any_matches(&fs, &c()), Some(true));
        let fs = [Filter::new("label", "role=app"), Filter::new("status", "x")];
        assert_eq!(any_matches(&fs, &c()), None);
        let fs = [Filter::new("label", "role=app")];
        assert_eq!(any_matches(&fs, &c()), Some(false));
    }
}
