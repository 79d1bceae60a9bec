//! The CNI specification as far as a chained plugin needs it: the
//! network configuration on stdin, the previous plugin's result, versions,
//! and the error document (SPEC.md, "Plugin Delegation" and "Result
//! Types"; errors under "Error").

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::PluginError;

/// Spec versions this plugin speaks; results are passed through unchanged,
/// and their format is the same for what this plugin reads.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// This plugin's configuration, as the runtime passes it for one
/// invocation (one element of the config list, plus `name`,
/// `cniVersion`, `prevResult`, `runtimeConfig`, `args`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// The spec version the runtime speaks for this network.
    pub cni_version: String,
    /// `same-bridge` (default), `isolated` or `proxy-only`.
    #[serde(default)]
    pub ingress_policy: Option<String>,
    /// Whether containers may open connections to the host (default false).
    #[serde(default)]
    pub allow_host_traffic: bool,
    /// The bridge; default: the first host-side interface of `prevResult`
    /// (the `bridge` plugin lists its bridge first).
    #[serde(default)]
    pub bridge: Option<String>,
    /// Where the plugin keeps which container has which addresses.
    #[serde(default)]
    pub data_dir: Option<String>,
    /// Flows between containers (`FROM->TO[:PORTS]`, proxy-only).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Services of the whitelisted containers open to every container
    /// (proxy-only).
    #[serde(default)]
    pub allow_to_proxy: Vec<String>,
    /// Services of the host open to the containers (every mode).
    #[serde(default)]
    pub allow_host_ports: Vec<String>,
    /// The result of the previous plugin in the chain.
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// Per-invocation values from the runtime (capabilities).
    #[serde(default)]
    pub runtime_config: Map<String, Value>,
    /// Per-invocation arguments in the configuration (`args.cni`).
    #[serde(default)]
    pub args: Map<String, Value>,
}

impl NetConf {
    /// Parse stdin and refuse versions this plugin does not speak.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, PluginError> {
        let conf: NetConf =
            serde_json::from_slice(bytes).map_err(|e| PluginError::Decode(e.to_string()))?;
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(PluginError::Version(conf.cni_version));
        }
        Ok(conf)
    }

    /// True when the spec version has CHECK (0.4.0 and later).
    pub fn has_check(&self) -> bool {
        !self.cni_version.starts_with("0.3.")
    }

    /// Whether the invocation marks the container as whitelisted: in the
    /// configuration's `args.cni.trafficjamWhitelist` or the runtime
    /// config's `trafficjamWhitelist` (CNI_ARGS is read by the caller).
    pub fn whitelisted(&self) -> bool {
        let t = |v: Option<&Value>| {
            matches!(v, Some(Value::Bool(true))) || matches!(v, Some(Value::String(s)) if truthy(s))
        };
        t(self.runtime_config.get("trafficjamWhitelist"))
            || t(self
                .args
                .get("cni")
                .and_then(|c| c.get("trafficjamWhitelist")))
    }
}

/// `true`, `1`, `yes` (any case).
pub fn truthy(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes")
}

/// What this plugin needs from the previous result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The bridge the container is plugged into.
    pub bridge: String,
    /// The host side of the container's veth, when listed.
    pub port: Option<String>,
    /// The MAC address of the container's interface, when listed.
    pub mac: Option<trafficjam_core::model::Mac>,
    /// The container's addresses, with their prefix lengths.
    pub addresses: Vec<IpNet>,
}

#[derive(Debug, Deserialize)]
struct Interface {
    name: String,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    sandbox: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IpConfig {
    address: String,
    #[serde(default)]
    interface: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct PrevResult {
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
}

impl Attachment {
    /// Read the bridge, the port and the addresses from `prevResult`.
    pub fn from_prev_result(prev: &Value, bridge: Option<&str>) -> Result<Attachment, PluginError> {
        let r: PrevResult = serde_json::from_value(prev.clone())
            .map_err(|e| PluginError::Decode(format!("prevResult: {e}")))?;
        let host_side: Vec<&Interface> = r
            .interfaces
            .iter()
            .filter(|i| i.sandbox.as_deref().unwrap_or("").is_empty())
            .collect();
        let bridge = match bridge {
            Some(b) => b.to_string(),
            None => host_side
                .first()
                .map(|i| i.name.clone())
                .ok_or_else(|| PluginError::Config("prevResult lists no host-side interface: put trafficjam after the `bridge` plugin, or name the bridge with \"bridge\"".into()))?,
        };
        let port = host_side
            .iter()
            .find(|i| i.name != bridge)
            .map(|i| i.name.clone());
        // The container's side: the interface its addresses are on, else
        // the first one inside a sandbox.
        let inside = r
            .ips
            .iter()
            .filter_map(|ip| ip.interface.and_then(|i| r.interfaces.get(i)))
            .chain(r.interfaces.iter())
            .find(|i| !i.sandbox.as_deref().unwrap_or("").is_empty());
        let mac = match inside.and_then(|i| i.mac.as_deref()) {
            Some(m) => Some(trafficjam_core::model::parse_mac(m).ok_or_else(|| {
                PluginError::Decode(format!(
                    "prevResult MAC address {m:?} is not like 02:42:ac:11:00:02"
                ))
            })?),
            None => None,
        };
        let mut addresses = Vec::new();
        for ip in &r.ips {
            // Only the container's own addresses, not the host side's.
            let on_host = ip
                .interface
                .and_then(|i| r.interfaces.get(i))
                .is_some_and(|i| i.sandbox.as_deref().unwrap_or("").is_empty());
            if on_host {
                continue;
            }
            let net: IpNet = ip.address.parse().map_err(|e| {
                PluginError::Decode(format!("prevResult address {:?}: {e}", ip.address))
            })?;
            addresses.push(net);
        }
        if addresses.is_empty() {
            return Err(PluginError::Config("prevResult has no address for the container: put trafficjam after a plugin with IPAM (e.g. `bridge` with `host-local`)".into()));
        }
        Ok(Attachment {
            bridge,
            port,
            mac,
            addresses,
        })
    }
}

/// The answer to VERSION.
pub fn version_document() -> Value {
    json!({ "cniVersion": "1.0.0", "supportedVersions": SUPPORTED_VERSIONS })
}

/// The error document: `cniVersion`, `code`, `msg`, `details`.
pub fn error_document(version: &str, e: &PluginError) -> Value {
    json!({
        "cniVersion": version,
        "code": e.code(),
        "msg": e.to_string(),
        "details": e.details(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge_plugin_result() -> Value {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni1", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/c1"}
            ],
            "ips": [
                {"address": "10.88.1.5/24", "gateway": "10.88.1.1", "interface": 2},
                {"address": "fd88:1::5/64", "gateway": "fd88:1::1", "interface": 2}
            ]
        })
    }

    #[test]
    fn attachment_from_the_bridge_plugin() {
        let a = Attachment::from_prev_result(&bridge_plugin_result(), None).unwrap();
        assert_eq!(a.bridge, "cni1");
        assert_eq!(a.port.as_deref(), Some("veth1234"));
        assert_eq!(
            a.addresses,
            vec![
                "10.88.1.5/24".parse::<IpNet>().unwrap(),
                "fd88:1::5/64".parse().unwrap()
            ]
        );
    }

    #[test]
    fn missing_pieces_are_config_errors() {
        let e =
            Attachment::from_prev_result(&serde_json::json!({"interfaces": [], "ips": []}), None)
                .unwrap_err();
        assert_eq!(e.code(), 7);
        let e = Attachment::from_prev_result(
            &serde_json::json!({"interfaces": [{"name": "br"}], "ips": []}),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("IPAM"), "{e}");
        let e = Attachment::from_prev_result(&serde_json::json!({"ips": "x"}), None).unwrap_err();
        assert_eq!(e.code(), 6);
    }

    #[test]
    fn versions_and_whitelist_marks() {
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"0.2.0"}"#)
                .unwrap_err()
                .code(),
            1
        );
        let c = NetConf::parse(
            br#"{"cniVersion":"0.3.1","runtimeConfig":{"trafficjamWhitelist":true}}"#,
        )
        .unwrap();
        assert!(c.whitelisted() && !c.has_check());
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","args":{"cni":{"trafficjamWhitelist":"yes"}}}"#,
        )
        .unwrap();
        assert!(c.whitelisted() && c.has_check());
        let c = NetConf::parse(br#"{"cniVersion":"1.0.0"}"#).unwrap();
        assert!(!c.whitelisted());
        assert_eq!(NetConf::parse(b"{").unwrap_err().code(), 6);
    }
}
