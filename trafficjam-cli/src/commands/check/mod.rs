//! `trafficjam check`: inspect the host, then prove enforcement live on
//! this kernel in a throwaway lab (see [`lab`]). Exits 0 only if every
//! requirement holds and every probe came out as the policy requires.

mod host;
mod lab;
mod matrix;

use std::time::Instant;

use trafficjam_core::{Enforced, InstanceId, Policy, Port, Role};
use trafficjam_netlink::RouteSocket;

use crate::cli::CheckArgs;
use crate::error::CliError;
use crate::firewall::Firewall;
use host::Mark;
use lab::{Lab, PAIRS};
use matrix::{render, required, score};

/// Run every check and print the report.
pub fn run(args: &CheckArgs) -> Result<(), CliError> {
    println!("host");
    let mut findings = vec![host::net_admin(), host::nf_tables(), host::br_netfilter()];
    findings.extend(host::docker(&args.networks, &args.whitelist_filters));
    for f in &findings {
        println!("{}", f.line());
    }
    let mut failed: Vec<String> = findings
        .iter()
        .filter(|f| f.mark == Mark::Fail)
        .map(|f| f.subject.clone())
        .collect();

    println!("\nenforcement, tested live on this kernel");
    if findings[0].mark == Mark::Fail {
        println!("  ✗ skipped: building the lab and applying rules need CAP_NET_ADMIN");
        failed.push("live test".into());
    } else if let Err(why) = live() {
        println!("  ✗ {why}");
        failed.push("live test".into());
    }

    if failed.is_empty() {
        println!("\nresult: every check passed");
        Ok(())
    } else {
        Err(CliError::CheckFailed(failed.join(", ")))
    }
}

/// Build the lab, probe without rules, apply the policy, probe again.
/// Returns why it failed; the lab is gone when this returns.
fn live() -> Result<(), String> {
    let lab = Lab::build().map_err(|e| format!("cannot build the lab: {e}"))?;
    let subnets = Lab::subnets();
    let proxy = &lab.containers[0];
    println!(
        "  lab: throwaway network namespaces, bridge {} with {} and {}",
        lab::BRIDGE,
        subnets[0],
        subnets[1]
    );
    let nodes: Vec<String> = std::iter::once(&lab.host)
        .chain(&lab.containers)
        .map(|n| format!("{} {} {}", n.name, n.v4, n.v6))
        .collect();
    println!("  nodes: {}", nodes.join("; "));
    if let Some(on) = lab.br_netfilter() {
        let layer = if on {
            "inet (br_netfilter on) and bridge"
        } else {
            "bridge (br_netfilter off)"
        };
        println!("  layers filtering the lab's bridged traffic: {layer}");
    }

    let started = Instant::now();
    let before = lab.probe(&PAIRS);
    let (good, all) = score(&before, |_| true);
    println!(
        "  without rules: {good} of {all} connections made ({} ms)",
        started.elapsed().as_millis()
    );
    if good != all {
        print!("{}", render(&before));
        return Err(
            "the lab does not connect without rules, so the test would prove nothing \
                    (is something else filtering new network namespaces?)"
                .into(),
        );
    }

    // The ports as a runtime would report them: read from the kernel.
    let ports: Vec<Port> = RouteSocket::open_in(Some(&lab.host_path()))
        .and_then(|mut r| r.bridge_ports(lab::BRIDGE))
        .map_err(|e| format!("cannot read the lab's bridge ports: {e}"))?
        .into_iter()
        .filter_map(|p| {
            Some(Port {
                role: if p.name == Lab::proxy_port() {
                    Role::Proxy
                } else {
                    Role::Backend
                },
                mac: p.peer_mac?,
                addrs: p.peer_addrs,
                name: p.name,
            })
        })
        .collect();
    let mut fw = Firewall::open(Some(&lab.host_path())).map_err(|e| e.to_string())?;
    let policy = Policy::new(
        InstanceId::new("check").map_err(|e| e.to_string())?,
        subnets,
        [proxy.v4.into(), proxy.v6.into()],
        false,
    )
    .and_then(|p| p.with_bridges([lab::BRIDGE.to_string()]))
    .and_then(|p| p.with_ports(ports))
    .map_err(|e| e.to_string())?
    .with_tracking(fw.bridge_tracking());
    let ruleset = policy.ruleset();
    let started = Instant::now();
    fw.apply(&ruleset)
        .map_err(|e| format!("applying the policy failed: {e}"))?;
    let took = started.elapsed();
    let mut tables = Vec::new();
    for t in &ruleset.tables {
        match fw.read_table(t.family, &t.name) {
            Ok(Some(read)) => tables.push(read),
            Ok(None) => {
                return Err(format!(
                    "table {} {} is missing after apply",
                    t.family, t.name
                ))
            }
            Err(e) => return Err(format!("reading the rules back failed: {e}")),
        }
    }
    let enforced = Enforced::from_tables(&tables);
    let Some(e) = enforced.first().filter(|e| e.intact) else {
        return Err("the rules read back from the kernel differ from the policy".into());
    };
    println!(
        "  policy applied in one transaction in {:.2} ms ({} whitelisted by its port {}, {} ports bound \
         to their MAC and addresses); read back intact, enforcing at: {}",
        took.as_secs_f64() * 1e3,
        proxy.name,
        Lab::proxy_port(),
        e.ports.len(),
        e.layers.join(", ")
    );

    let started = Instant::now();
    let after = lab.probe(&PAIRS);
    let (good, all) = score(&after, |r| required(r.from_role, r.to_role));
    println!("  with the policy ({} ms):", started.elapsed().as_millis());
    print!("{}", render(&after));
    drop(fw);
    drop(lab);
    println!("  lab removed: its namespaces took the bridge, the veths and the rules with them");
    if good == all {
        println!("  ✓ {good} of {all} probes as the policy requires");
        Ok(())
    } else {
        Err(format!(
            "{} of {all} probes NOT as the policy requires",
            all - good
        ))
    }
}
