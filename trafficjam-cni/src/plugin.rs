//! ADD, DEL and CHECK: update the state, compile every managed bridge into
//! one ruleset, and make the kernel hold exactly that in one transaction.

use std::path::PathBuf;

use serde_json::Value;
use trafficjam_core::isolation::{BridgeIsolation, IngressPolicy};
use trafficjam_core::wire::{plan, Batch, Change};
use trafficjam_netlink::Firewall;

use crate::error::PluginError;
use crate::invocation::Invocation;
use crate::spec::{Attachment, NetConf};
use crate::state::{BridgeState, Declared, Member, Store, DEFAULT_DIR};

fn data_dir(conf: &NetConf) -> PathBuf {
    PathBuf::from(conf.data_dir.as_deref().unwrap_or(DEFAULT_DIR))
}

fn ingress(conf: &NetConf) -> Result<IngressPolicy, PluginError> {
    match conf.ingress_policy.as_deref() {
        None | Some("") => Ok(IngressPolicy::SameBridge),
        Some(p) => IngressPolicy::parse(p).ok_or_else(|| {
            PluginError::Config(format!(
                "ingressPolicy {p:?} is not one of \"same-bridge\", \"isolated\", \"proxy-only\""
            ))
        }),
    }
}

fn prev_result(conf: &NetConf) -> Result<&Value, PluginError> {
    conf.prev_result.as_ref().ok_or_else(|| {
        PluginError::Config(
            "no prevResult: trafficjam is a chained plugin; list it after `bridge` (and `portmap`) in the network's plugins".into(),
        )
    })
}

/// Make the kernel hold exactly what the store describes.
fn enforce(store: &Store) -> Result<(), PluginError> {
    let iso = BridgeIsolation::new(store.managed())?;
    Firewall::open_in(None)?.converge(iso.ruleset(), BridgeIsolation::owns)?;
    Ok(())
}

/// ADD: enrol the container, enforce, and pass `prevResult` on.
pub fn add(conf: &NetConf, inv: &Invocation) -> Result<Value, PluginError> {
    let ingress = ingress(conf)?;
    let prev = prev_result(conf)?;
    let at = Attachment::from_prev_result(prev, conf.bridge.as_deref())?;
    let mut store = Store::open(&data_dir(conf))?;
    let key = inv.key();
    // An attachment re-added to another bridge leaves the old one.
    let old = store.remove(&key);
    let state = store
        .bridges
        .entry(at.bridge.clone())
        .or_insert_with(|| BridgeState {
            ingress_policy: ingress,
            allow_host_traffic: conf.allow_host_traffic,
            members: Default::default(),
            exceptions: Default::default(),
        });
    let declared = Declared {
        allow: conf.allow.clone(),
        allow_to_proxy: conf.allow_to_proxy.clone(),
        allow_host_ports: conf.allow_host_ports.clone(),
    };
    declared.validate().map_err(PluginError::Config)?;
    if state.members.is_empty() {
        state.ingress_policy = ingress;
        state.allow_host_traffic = conf.allow_host_traffic;
        state.exceptions = declared;
    } else if (state.ingress_policy, state.allow_host_traffic) != (ingress, conf.allow_host_traffic)
        || state.exceptions != declared
    {
        return Err(PluginError::Config(format!(
            "bridge {} already has containers with ingressPolicy {:?}, allowHostTraffic {} and other exceptions (allow, allowToProxy, allowHostPorts); every network on one bridge must use the same settings",
            at.bridge,
            state.ingress_policy.as_str(),
            state.allow_host_traffic
        )));
    }
    state.members.insert(
        key,
        Member {
            addresses: at.addresses.clone(),
            port: at.port.clone(),
            mac: at
                .mac
                .map(|m| trafficjam_core::model::Value::Ether(m).to_string()),
            whitelisted: inv.whitelisted || conf.whitelisted(),
        },
    );
    enforce(&store)?;
    store.save(&at.bridge)?;
    if let Some(old) = old.filter(|o| *o != at.bridge) {
        store.save(&old)?;
    }
    let mut out = prev.clone();
    if let Value::Object(m) = &mut out {
        m.insert("cniVersion".into(), Value::String(conf.cni_version.clone()));
    }
    Ok(out)
}

/// DEL: forget the container; a bridge's objects go with its last one.
/// Succeeds when there is nothing to delete (the spec asks for that).
pub fn del(conf: &NetConf, inv: &Invocation) -> Result<(), PluginError> {
    let mut store = Store::open(&data_dir(conf))?;
    let bridge = store.remove(&inv.key());
    // Enforce even if nothing was found: this also removes what an
    // interrupted invocation may have left behind.
    enforce(&store)?;
    if let Some(b) = bridge {
        store.save(&b)?;
    }
    Ok(())
}

/// CHECK: the container is enrolled with the addresses of `prevResult`,
/// and the kernel holds exactly the rules the state calls for.
pub fn check(conf: &NetConf, inv: &Invocation) -> Result<(), PluginError> {
    if !conf.has_check() {
        return Err(PluginError::Version(format!(
            "{} (CHECK needs 0.4.0 or later)",
            conf.cni_version
        )));
    }
    let at = Attachment::from_prev_result(prev_result(conf)?, conf.bridge.as_deref())?;
    let store = Store::open(&data_dir(conf))?;
    let key = inv.key();
    match store.find(&key) {
        None => {
            return Err(PluginError::Check(format!(
                "container {key} is not enrolled by trafficjam (was ADD run?)"
            )))
        }
        Some((bridge, m)) if bridge != at.bridge || m.addresses != at.addresses => {
            return Err(PluginError::Check(format!(
                "container {key} is enrolled on bridge {bridge} with {:?}, not on {} with {:?}",
                m.addresses, at.bridge, at.addresses
            )))
        }
        Some(_) => {}
    }
    let iso = BridgeIsolation::new(store.managed())?;
    let mut fw = Firewall::open_in(None)?;
    for want in iso.ruleset().tables {
        let have = fw.read_table(want.family, &want.name)?;
        let mut scratch = Batch::new(1);
        match (have.is_some(), plan(&mut scratch, &want, have.as_ref())) {
            (true, Change::Unchanged) => {}
            (false, _) => {
                return Err(PluginError::Check(format!(
                    "table {} {} is missing",
                    want.family, want.name
                )))
            }
            (true, _) => {
                return Err(PluginError::Check(format!(
                "table {} {} was altered: its rules or sets differ from what trafficjam installed",
                want.family, want.name
            )))
            }
        }
    }
    Ok(())
}
