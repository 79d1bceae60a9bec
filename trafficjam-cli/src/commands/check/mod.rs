//! `trafficjam check`: inspect the host, then prove enforcement live on
//! this kernel in a throwaway lab (see [`lab`]). Exits 0 only if every
//! requirement holds and every probe came out as the policy requires.

mod attacks;
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

    let (fw, took, e) = enforce(&lab)?;
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
    let matrix = if good == all {
        println!("  ✓ {good} of {all} probes as the policy requires");
        Ok(())
    } else {
        Err(format!(
            "{} of {all} probes NOT as the policy requires",
            all - good
        ))
    };
    let attacks = attacks();
    println!(
        "  labs removed: their namespaces took the bridges, the veths and the rules with them"
    );
    matrix.and(attacks)
}

/// Apply the policy to a lab, with the lab's ports read from the kernel as
/// a runtime would report them, and read it back.
fn enforce(lab: &Lab) -> Result<(Firewall, std::time::Duration, Enforced), String> {
    let proxy = &lab.containers[0];
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
        Lab::subnets(),
        [proxy.v4.into(), proxy.v6.into()],
        false,
    )
    .and_then(|p| p.with_bridges([lab::BRIDGE.to_string()]))
    .and_then(|p| p.with_ports(ports))
    .map_err(|e| e.to_string())?
    .with_tracking(fw.bridge_tracking());
    let ruleset = policy.ruleset();
    // Kept to read back against what was sent.
    let sent = ruleset.clone();
    let started = Instant::now();
    fw.apply(sent)
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
    let e = Enforced::from_tables(&tables)
        .into_iter()
        .next()
        .filter(|e| e.intact)
        .ok_or("the rules read back from the kernel differ from the policy")?;
    Ok((fw, took, e))
}

/// Every attack of [`attacks::ATTACKS`] in a fresh lab without rules (it
/// must work there) and in a fresh lab with the policy applied before any
/// traffic (it must not work there).
fn attacks() -> Result<(), String> {
    println!("\n  attacks from backend1 (with CAP_NET_RAW, as every container has):");
    let started = Instant::now();
    let run = |with_policy: bool| -> Result<Vec<Result<bool, String>>, String> {
        let lab = Lab::build().map_err(|e| format!("cannot build an attack lab: {e}"))?;
        let _fw = if with_policy {
            Some(enforce(&lab)?.0)
        } else {
            None
        };
        let scene = attacks::Scene::new(&lab)?;
        Ok(attacks::ATTACKS
            .iter()
            .map(|a| scene.try_attack(a))
            .collect())
    };
    let without = run(false)?;
    let with = run(true)?;
    let width = attacks::ATTACKS
        .iter()
        .map(|a| a.name.chars().count())
        .max()
        .unwrap_or(0);
    println!(
        "    {:width$}  {:<15}  with the policy",
        "", "without rules"
    );
    let mut bad = 0;
    for ((a, w), p) in attacks::ATTACKS.iter().zip(&without).zip(&with) {
        let cell = |r: &Result<bool, String>, want: bool| match r {
            Ok(true) if want => "✓ works",
            Ok(true) => "✓ works !",
            Ok(false) if !want => "✗ stopped",
            Ok(false) => "✗ stopped !",
            Err(_) => "? failed",
        };
        let ok = matches!(w, Ok(true)) && matches!(p, Ok(false));
        if !ok {
            bad += 1;
        }
        println!(
            "    {:width$}  {:<15}  {}",
            a.name,
            cell(w, true),
            cell(p, false)
        );
        for e in [w, p].into_iter().filter_map(|r| r.as_ref().err()) {
            println!("      ? {e}");
        }
    }
    let all = attacks::ATTACKS.len();
    if bad == 0 {
        println!(
            "  ✓ {all} of {all} attacks work without rules and are stopped by the policy ({} ms)",
            started.elapsed().as_millis()
        );
        Ok(())
    } else {
        Err(format!(
            "{bad} of {all} attacks not as required (each must work without rules, and not with the policy)"
        ))
    }
}
