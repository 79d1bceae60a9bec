//! The per-invocation environment variables of the CNI spec.

use std::collections::BTreeMap;

use crate::error::PluginError;
use crate::spec::truthy;

/// The command the runtime asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach it.
    Del,
    /// Verify it.
    Check,
    /// Report the spec versions.
    Version,
}

/// What the environment says about this invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `TRAFFICJAM_WHITELIST=true` in `CNI_ARGS`.
    pub whitelisted: bool,
}

impl Invocation {
    /// Read the invocation from `var` (the process environment in `main`).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Invocation, PluginError> {
        let command = match var("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some(other) => {
                return Err(PluginError::Environment(format!(
                    "CNI_COMMAND {other:?} is not supported (ADD, DEL, CHECK, VERSION)"
                )))
            }
            None => {
                return Err(PluginError::Environment(
                    "CNI_COMMAND is not set: trafficjam-cni is a CNI plugin, run by a container runtime (see README)".into(),
                ))
            }
        };
        let required = |name: &str| {
            var(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| PluginError::Environment(format!("{name} is not set")))
        };
        let (container_id, ifname) = if command == Command::Version {
            (String::new(), String::new())
        } else {
            (required("CNI_CONTAINERID")?, required("CNI_IFNAME")?)
        };
        let args = parse_args(&var("CNI_ARGS").unwrap_or_default())?;
        Ok(Invocation {
            command,
            container_id,
            ifname,
            whitelisted: args.get("TRAFFICJAM_WHITELIST").is_some_and(|v| truthy(v)),
        })
    }

    /// The key of this attachment in the state: `containerid/ifname`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_id, self.ifname)
    }
}

/// `K=V;K=V` (CNI_ARGS).
fn parse_args(s: &str) -> Result<BTreeMap<String, String>, PluginError> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    PluginError::Environment(format!("CNI_ARGS item {p:?} is not KEY=VALUE"))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn reads_the_spec_variables_and_the_whitelist_mark() {
        let i = Invocation::from_env(env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;TRAFFICJAM_WHITELIST=true"),
        ]))
        .unwrap();
        assert_eq!(i.command, Command::Add);
        assert!(i.whitelisted);
        assert_eq!(i.key(), "c1/eth0");
        let v = Invocation::from_env(env(&[("CNI_COMMAND", "VERSION")])).unwrap();
        assert_eq!(v.command, Command::Version);
    }

    #[test]
    fn bad_environment_is_code_4() {
        for bad in [
            vec![],
            vec![("CNI_COMMAND", "GC")],
            vec![("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")],
            vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "c"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "x"),
            ],
        ] {
            let e = Invocation::from_env(env(&bad)).unwrap_err();
            assert_eq!(e.code(), 4, "{bad:?}: {e}");
        }
    }
}
