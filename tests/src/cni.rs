//! A CNI runtime in miniature, for running plugin chains the way
//! containerd or Podman do: the environment variables of the spec, each
//! plugin's configuration on stdin (the list's `name` and `cniVersion`, the
//! previous result as `prevResult`, `runtimeConfig` for declared
//! capabilities), ADD in list order, DEL in reverse with the cached result.
//!
//! Plugins run inside a "host" namespace the test owns, so their bridges,
//! iptables rules and nftables tables live there and disappear with it.
//! Debian's `containernetworking-plugins` provides `bridge`, `host-local`,
//! `portmap` and `firewall` in [`PLUGIN_DIR`].

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::Netns;

/// Where Debian installs the reference plugins.
pub const PLUGIN_DIR: &str = "/usr/lib/cni";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A plugin's error document, or a failure to run it at all.
#[derive(Debug)]
pub struct CniError {
    /// The plugin that failed.
    pub plugin: String,
    /// Its exit status.
    pub status: Option<i32>,
    /// The error document it printed (`code`, `msg`, `details`), if any.
    pub document: Option<Value>,
    /// What it printed, for the assertion message.
    pub output: String,
}

impl CniError {
    /// The CNI error code, if the plugin printed an error document.
    pub fn code(&self) -> Option<u64> {
        self.document.as_ref()?.get("code")?.as_u64()
    }

    /// The error message.
    pub fn msg(&self) -> String {
        self.document
            .as_ref()
            .and_then(|d| d.get("msg"))
            .and_then(Value::as_str)
            .unwrap_or(&self.output)
            .to_string()
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "plugin {} exited {:?}: {}",
            self.plugin, self.status, self.output
        )
    }
}

/// One container's attachment, as the runtime names it to plugins
/// (its interface is always `eth0`).
#[derive(Debug, Clone, Copy)]
pub struct Attach<'a> {
    /// `CNI_CONTAINERID`.
    pub container: &'a str,
    /// The container's namespace (`CNI_NETNS`).
    pub ns: &'a Netns,
    /// `CNI_ARGS`.
    pub cni_args: &'a str,
}

/// The runtime: a host namespace, a plugin directory and a scratch
/// directory for IPAM and plugin state; all removed on drop.
pub struct Runtime {
    /// The namespace the plugins run in (the runtime's "host").
    pub host: Netns,
    dir: PathBuf,
    /// Results of ADD, by container id and network name, for DEL/CHECK.
    cache: Mutex<BTreeMap<(String, String), Value>>,
}

impl Runtime {
    /// A runtime whose plugin directory has Debian's plugins and
    /// `trafficjam` (the binary at `trafficjam_cni`).
    pub fn new(prefix: &str, trafficjam_cni: &Path) -> io::Result<Runtime> {
        if !Path::new(PLUGIN_DIR).join("bridge").exists() {
            return Err(io::Error::other(format!(
                "{PLUGIN_DIR}/bridge is missing: apt-get install containernetworking-plugins (scripts/test.sh does)"
            )));
        }
        let host = Netns::new(prefix)?;
        // The host forwards between its bridges, as a container host does.
        host.sysctl("net.ipv4.ip_forward", "1")?;
        host.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{prefix}-cni-{}-{n}", std::process::id()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin)?;
        for p in ["bridge", "host-local", "portmap", "firewall", "loopback"] {
            std::os::unix::fs::symlink(Path::new(PLUGIN_DIR).join(p), bin.join(p))?;
        }
        std::os::unix::fs::symlink(trafficjam_cni, bin.join("trafficjam"))?;
        Ok(Runtime {
            host,
            dir,
            cache: Mutex::new(BTreeMap::new()),
        })
    }

    /// A scratch directory of this runtime (e.g. for `dataDir`).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Run one plugin binary with `command` for attachment `at` and
    /// `conf` on stdin.
    pub fn invoke(
        &self,
        plugin: &str,
        command: &str,
        at: &Attach,
        conf: &Value,
    ) -> Result<Option<Value>, CniError> {
        let bin = self.dir.join("bin");
        let fail = |status, output: String| {
            let document = serde_json::from_str::<Value>(&output).ok();
            CniError {
                plugin: plugin.to_string(),
                status,
                document,
                output,
            }
        };
        let mut child = Command::new("ip")
            .args(["netns", "exec", self.host.name()])
            .arg(bin.join(plugin))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", at.container)
            .env("CNI_NETNS", at.ns.path())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", at.cni_args)
            .env("CNI_PATH", &bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(None, e.to_string()))?;
        let input = conf.to_string();
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail(None, e.to_string()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(fail(out.status.code(), format!("{stdout}{stderr}")));
        }
        if stdout.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&stdout)
            .map(Some)
            .map_err(|e| fail(out.status.code(), format!("{e}: {stdout}")))
    }

    /// The configuration the runtime gives plugin `i` of `list`.
    fn plugin_conf(list: &Value, i: usize, prev: Option<&Value>, runtime: &Value) -> Value {
        let mut conf = list["plugins"][i].clone();
        conf["name"] = list["name"].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        // runtimeConfig carries only the capabilities the plugin declares.
        let caps = conf.get("capabilities").cloned().unwrap_or(json!({}));
        let mut rc = serde_json::Map::new();
        if let (Some(caps), Some(runtime)) = (caps.as_object(), runtime.as_object()) {
            for (k, v) in runtime {
                if caps.get(k) == Some(&Value::Bool(true)) {
                    rc.insert(k.clone(), v.clone());
                }
            }
        }
        if !rc.is_empty() {
            conf["runtimeConfig"] = Value::Object(rc);
        }
        conf
    }

    fn plugins(list: &Value) -> Vec<String> {
        list["plugins"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| p["type"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// ADD `container` (namespace `ns`) to the network `list` (a config
    /// list); returns the final result.
    pub fn add(
        &self,
        list: &Value,
        container: &str,
        ns: &Netns,
        cni_args: &str,
        runtime: &Value,
    ) -> Result<Value, CniError> {
        let at = Attach {
            container,
            ns,
            cni_args,
        };
        let mut prev: Option<Value> = None;
        for (i, plugin) in Self::plugins(list).iter().enumerate() {
            let conf = Self::plugin_conf(list, i, prev.as_ref(), runtime);
            let out = self.invoke(plugin, "ADD", &at, &conf)?;
            prev = out.or(prev);
        }
        let result = prev.unwrap_or(json!({}));
        self.cache
            .lock()
            .unwrap()
            .insert(cache_key(list, container), result.clone());
        Ok(result)
    }

    fn cached(&self, list: &Value, container: &str) -> Option<Value> {
        let key = cache_key(list, container);
        self.cache.lock().unwrap().get(&key).cloned()
    }

    /// DEL, in reverse order, each plugin given the cached ADD result.
    pub fn del(
        &self,
        list: &Value,
        container: &str,
        ns: &Netns,
        cni_args: &str,
        runtime: &Value,
    ) -> Result<(), CniError> {
        let at = Attach {
            container,
            ns,
            cni_args,
        };
        self.with_cached("DEL", list, &at, runtime, true)?;
        self.cache
            .lock()
            .unwrap()
            .remove(&cache_key(list, container));
        Ok(())
    }

    /// CHECK, in order, each plugin given the cached ADD result.
    pub fn check(
        &self,
        list: &Value,
        container: &str,
        ns: &Netns,
        cni_args: &str,
        runtime: &Value,
    ) -> Result<(), CniError> {
        let at = Attach {
            container,
            ns,
            cni_args,
        };
        self.with_cached("CHECK", list, &at, runtime, false)
    }

    /// Run `command` on every plugin of `list` (in reverse if asked), each
    /// given the cached ADD result as `prevResult`.
    fn with_cached(
        &self,
        command: &str,
        list: &Value,
        at: &Attach,
        runtime: &Value,
        reverse: bool,
    ) -> Result<(), CniError> {
        let prev = self.cached(list, at.container);
        let mut order: Vec<(usize, String)> = Self::plugins(list).into_iter().enumerate().collect();
        if reverse {
            order.reverse();
        }
        for (i, plugin) in order {
            let conf = Self::plugin_conf(list, i, prev.as_ref(), runtime);
            self.invoke(&plugin, command, at, &conf)?;
        }
        Ok(())
    }
}

/// Results are cached per container and network, as runtimes do.
fn cache_key(list: &Value, container: &str) -> (String, String) {
    (
        container.to_string(),
        list["name"].as_str().unwrap_or("").to_string(),
    )
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The address the result gives the container's interface, per family.
pub fn result_addrs(result: &Value) -> Vec<std::net::IpAddr> {
    result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip["address"].as_str())
                .filter_map(|a| a.split('/').next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
