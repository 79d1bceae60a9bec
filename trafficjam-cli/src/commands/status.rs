//! `trafficjam status`: what the kernel enforces now, read back from it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use trafficjam_core::isolation::{self, ISOLATION_TABLE};
use trafficjam_core::model::{Expr, Family, Table};
use trafficjam_core::{text, Enforced};

use super::runtime;
use crate::docker::DockerClient;

use crate::cli::StatusArgs;
use crate::error::CliError;
use crate::firewall::Firewall;

/// One instance in `status --json`: what the kernel enforces, and the
/// container names Docker gives the addresses (when it can be asked).
#[derive(serde::Serialize)]
struct Instance {
    #[serde(flatten)]
    enforced: Enforced,
    /// Container names by address, when the instance manages a Docker
    /// network that exists; omitted otherwise.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    names: BTreeMap<IpAddr, String>,
    /// The namespace the tables are in, when it is one of the Engine's
    /// (a Swarm overlay's, `ingress_sbox`); omitted for the one status
    /// was asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

/// The JSON document `status --json` prints.
#[derive(serde::Serialize)]
struct Status {
    instances: Vec<Instance>,
    /// Whether bridged traffic passes the IP hooks; `null` if unknown.
    br_netfilter: Option<bool>,
    /// Bridges isolated by trafficjam-cni; omitted when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cni_bridges: Vec<String>,
}

/// Print every trafficjam instance found in the kernel.
pub fn run(args: &StatusArgs) -> Result<(), CliError> {
    let mut tables = Firewall::open(args.target.netns.as_deref())?.read_own_tables()?;
    let mut instances: Vec<Instance> = Enforced::from_tables(&tables)
        .into_iter()
        .map(|enforced| Instance {
            names: BTreeMap::new(),
            enforced,
            namespace: None,
        })
        .collect();
    instances = with_docker_names(instances);
    if args.target.netns.is_none() {
        for (ns, found) in engine_namespaces(&args.docker_exec_root) {
            instances.extend(
                Enforced::from_tables(&found)
                    .into_iter()
                    .map(|enforced| Instance {
                        names: BTreeMap::new(),
                        enforced,
                        namespace: Some(ns.display().to_string()),
                    }),
            );
            tables.extend(found);
        }
    }
    let cni = tables
        .iter()
        .find(|t| t.family == Family::Inet && t.name == ISOLATION_TABLE);
    let cni_bridges = cni
        .and_then(|t| t.set(isolation::names::BRIDGES))
        .map(|s| s.ifnames())
        .unwrap_or_default();
    let br_netfilter = br_netfilter(args.target.netns.as_deref());
    if args.json {
        let status = Status {
            instances,
            br_netfilter,
            cni_bridges,
        };
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    if let Some(t) = cni {
        let dropped: u64 = t
            .chains
            .iter()
            .flat_map(|c| c.rules.iter())
            .flat_map(|r| r.exprs.iter())
            .map(|e| match e {
                Expr::Counter { packets, .. } => *packets,
                _ => 0,
            })
            .sum();
        println!(
            "bridge isolation (trafficjam-cni): bridges {}; {dropped} packets dropped",
            join(&cni_bridges)
        );
    }
    if instances.is_empty() && cni.is_none() {
        println!("trafficjam: no policy is enforced (no trafficjam table in the kernel)");
    }
    for Instance {
        enforced: e,
        names,
        namespace,
    } in &instances
    {
        match namespace {
            Some(ns) => println!("instance {} ({}) in namespace {ns}", e.instance, e.table),
            None => println!("instance {} ({})", e.instance, e.table),
        }
        if !e.blocked_ingress.is_empty() {
            println!(
                "  routing mesh blocked on this node for: {}",
                e.blocked_ingress.join(", ")
            );
        }
        println!("  subnets:       {}", join(&e.subnets));
        let whitelisted: Vec<String> = e
            .whitelist
            .iter()
            .map(|ip| match names.get(ip) {
                Some(n) => format!("{n} ({ip})"),
                None => ip.to_string(),
            })
            .collect();
        println!("  whitelisted:   {}", join(&whitelisted));
        println!("  bridges:       {}", join(&e.bridges));
        for p in &e.ports {
            let name = p
                .addrs
                .iter()
                .find_map(|a| names.get(a))
                .map_or(String::new(), |n| format!(" {n}"));
            println!(
                "  port {:<15} {:<7}{name}: sends only as {} {}",
                p.name,
                p.role,
                p.mac,
                join(&p.addrs)
            );
        }
        let port_name = |port: &str| {
            e.ports
                .iter()
                .find(|p| p.name == port)
                .and_then(|p| p.addrs.iter().find_map(|a| names.get(a)))
                .map_or(port.to_string(), |n| format!("{n} ({port})"))
        };
        for a in &e.allowed {
            let what = if a.services.is_empty() {
                "any port".to_string()
            } else {
                a.services.join(", ")
            };
            println!(
                "  allowed:       {} → {}: {what}",
                port_name(&a.from),
                port_name(&a.to)
            );
        }
        if !e.proxy_services.is_empty() {
            println!(
                "  open on the proxy to every container: {}",
                e.proxy_services.join(", ")
            );
        }
        if !e.host_services.is_empty() {
            println!(
                "  open on the host to containers: {}",
                e.host_services.join(", ")
            );
        }
        if !e.unidentified.is_empty() {
            println!(
                "  unidentified:  {} (nothing they send passes until their container is known)",
                e.unidentified.join(", ")
            );
        }
        if !e.uplinks.is_empty() {
            println!("  uplinks:       {} (left alone)", e.uplinks.join(", "));
        }
        if !e.remote_ports.is_empty() {
            println!(
                "  remote:        {} (the network's containers on other nodes: judged where they send)",
                e.remote_ports.join(", ")
            );
        }
        if !e.blocked_outbound.is_empty() {
            println!(
                "  blocked outbound, anywhere: {}",
                e.blocked_outbound.join(", ")
            );
        }
        println!(
            "  host traffic:  {}",
            if e.allow_host_traffic {
                "allowed"
            } else {
                "blocked"
            }
        );
        println!("  enforcing at:  {}", e.layers.join(", "));
        if let Some(rate) = e.log_blocked_per_second {
            println!("  blocked log:   on, at most {rate} lines a second (run `trafficjam run --log-blocked` to read it)");
        }
        for d in &e.drops {
            println!(
                "  dropped in {}: {} packets, {} bytes",
                d.chain, d.packets, d.bytes
            );
        }
        let kinds: Vec<String> = e
            .drops_by_kind
            .iter()
            .map(|d| format!("{} {}", d.chain, d.packets))
            .collect();
        println!("  dropped by kind (packets): {}", join(&kinds));
        if !e.intact {
            println!("  WARNING: the tables differ from what trafficjam installs (altered by someone else?); run `trafficjam apply` to restore them");
            for t in tables
                .iter()
                .filter(|t| e.table.contains(&format!("{} {}", t.family, t.name)))
            {
                print!("{}", text::table(t));
            }
        }
    }
    match br_netfilter {
        Some(true) => {
            println!("br_netfilter: on (bridged traffic also passes the IP layer)")
        }
        Some(false) => {
            println!("br_netfilter: off (between containers the bridge layer decides alone)")
        }
        None => {
            println!("br_netfilter: unknown (could not read net.bridge.bridge-nf-call-iptables)")
        }
    }
    Ok(())
}

/// trafficjam's tables in the Engine's namespaces (`<exec-root>/netns/*`:
/// Swarm overlays, `ingress_sbox`; the containers' sandboxes, hundreds on
/// a busy host, are not entered), by namespace. Those that cannot be
/// entered or read are skipped: the host's own status is what was asked.
fn engine_namespaces(exec_root: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<Table>)> {
    let Ok(entries) = std::fs::read_dir(exec_root.join("netns")) else {
        return Vec::new();
    };
    let mut paths: Vec<std::path::PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(trafficjam_docker::overlay::is_enforced_namespace)
        })
        .map(|e| e.path())
        .filter(|p| trafficjam_docker::overlay::namespace_at(p).is_some())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let tables = Firewall::open(Some(&p)).ok()?.read_own_tables().ok()?;
            (!tables.is_empty()).then_some((p, tables))
        })
        .collect()
}

/// Ask Docker, if it answers within a second, for the names behind the
/// addresses of instances named after a Docker network. Best effort: the
/// status comes from the kernel, names are a convenience.
fn with_docker_names(mut instances: Vec<Instance>) -> Vec<Instance> {
    if instances.is_empty() {
        return instances;
    }
    runtime().block_on(async {
        let wait = std::time::Duration::from_secs(1);
        let Ok(Ok(client)) = tokio::time::timeout(wait, DockerClient::connect()).await else {
            return;
        };
        for i in &mut instances {
            let discovered =
                tokio::time::timeout(wait, client.discover(&i.enforced.instance, &[], None)).await;
            if let Ok(Ok(d)) = discovered {
                // Only if the network really is the one the instance manages.
                if d.subnets == i.enforced.subnets {
                    i.names = d.names;
                }
            }
        }
    });
    instances
}

/// Whether bridged IPv4 and IPv6 traffic passes the IP hooks in the
/// namespace (both `bridge-nf-call-iptables` and `-ip6tables` are 1).
pub(crate) fn br_netfilter(netns: Option<&std::path::Path>) -> Option<bool> {
    let read = || -> Option<bool> {
        let on = |key: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/bridge/{key}"))
                .ok()
                .map(|v| v.trim() == "1")
        };
        Some(on("bridge-nf-call-iptables")? && on("bridge-nf-call-ip6tables")?)
    };
    match netns {
        None => read(),
        // /proc/sys/net shows the namespace of the thread that reads it.
        Some(path) => {
            let file = std::fs::File::open(path).ok()?;
            std::thread::spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
                read()
            })
            .join()
            .ok()?
        }
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "(none)".to_string();
    }
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
