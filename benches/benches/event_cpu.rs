//! The daemon's user-space work for one container event, by network size:
//! from "Docker says container X left (or came back)" to the transaction's
//! bytes — the network's policy, then the set elements its ports changed
//! (or, for any other change, its ruleset and the change planned against
//! the tables last committed), and the log line's summary. The kernel and
//! Docker are left out (`scripts/bench_scale.sh` measures the whole), so
//! what grows with the number of containers shows here alone.
//!
//! `cargo bench -p trafficjam-benches --bench event_cpu [-- SIZE...]`

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use trafficjam_benches::{median, time_runs, us};
use trafficjam_core::model::Table;
use trafficjam_core::wire::{encode, plan, Batch};
use trafficjam_core::{InstanceId, Policy, Tracking};
use trafficjam_docker::discover::{Endpoint, Summary};
use trafficjam_docker::filter::Container;
use trafficjam_docker::{Discovery, Driver};

/// A network of `n` containers, every tenth a proxy, every container of a
/// compose project (labels as compose sets them), all bound to ports; the
/// fourth lets the fifth in (an allow label).
fn network(n: u32) -> Discovery {
    let endpoint = |i: u32| Endpoint {
        name: format!("app-{i}"),
        id: format!("{i:064x}"),
        addrs: vec![IpAddr::V4(Ipv4Addr::from(0x0aa0_0002 + i))],
        mac: Some([0x02, 0x42, 0x0a, 0xa0, (i >> 8) as u8, i as u8]),
        port: Some(format!("veth{i:07x}")),
    };
    let endpoints: Vec<Endpoint> = (0..n).map(endpoint).collect();
    let containers: HashMap<String, Container> = endpoints
        .iter()
        .map(|e| {
            let labels = [
                ("com.docker.compose.project", "bench"),
                ("com.docker.compose.service", e.name.as_str()),
                ("com.docker.compose.version", "1.29.2"),
            ];
            let mut labels: Vec<(&str, &str)> = labels.to_vec();
            if e.name == "app-3" {
                labels.push(("trafficjam.allow-from", "name=app-4"));
            }
            let c = Container {
                id: e.id.clone(),
                name: e.name.clone(),
                image: "busybox".into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            (e.id.clone(), c)
        })
        .collect();
    Discovery {
        network: "bench".into(),
        id: "b".repeat(64),
        subnets: vec!["10.160.0.0/16".parse().expect("subnet")],
        bridge: "br-bench".into(),
        whitelist: endpoints.iter().step_by(10).cloned().collect(),
        names: endpoints
            .iter()
            .map(|e| (e.addrs[0], e.name.clone()))
            .collect(),
        endpoints,
        unidentified: Vec::new(),
        bridge_index: Some(7),
        containers,
        driver: Driver::Bridge,
        remote: Vec::new(),
        overlay_bridges: Vec::new(),
    }
}

/// One event's work, as the daemon does it: the network's policy; when it
/// differs from the `last` only in backend ports, the elements that changed
/// (encoded against the `known` tables, which they update), else the whole
/// ruleset planned against `known`; and what the log line says changed
/// since `logged`.
fn handle(
    d: &Discovery,
    last: &mut Option<Policy>,
    known: &mut Vec<Table>,
    logged: &mut Summary,
) -> usize {
    let instance = InstanceId::new("bench").expect("valid id");
    let allowed = d.allowed();
    let policy = d
        .policy_allowing(instance, false, &allowed)
        .expect("valid policy")
        .with_tracking(Tracking::FlowSets);
    let mut batch = Batch::new(1);
    let update = last.as_ref().and_then(|l| l.port_update(&policy));
    match update {
        Some(u) if known.iter().all(|t| u.fits(t)) && !known.is_empty() => {
            for table in known.iter_mut() {
                for c in u.changes(table.family) {
                    let set = table.set(c.set).expect("the set");
                    encode::delete_elements(&mut batch, table, set, &c.removed);
                    encode::add_elements(&mut batch, table, set, &c.added, None);
                }
                u.apply_to(table);
            }
        }
        _ => {
            let tables = policy.ruleset().tables;
            for (t, k) in tables.iter().zip(known.iter()) {
                plan(&mut batch, t, Some(k));
            }
            if known.is_empty() {
                for t in &tables {
                    plan(&mut batch, t, None);
                }
            }
            *known = tables;
        }
    }
    *last = Some(policy);
    let mut lines = 0;
    if !d.summary_is(logged, &allowed) {
        let now = d.summary_allowing(&allowed);
        lines = now.changes_since(logged).len();
        *logged = now;
    }
    lines + batch.len()
}

fn main() {
    println!("containers | one event, user space: median   p90 (µs)");
    // Sizes from the command line (`-- 500`), else these.
    let mut sizes: Vec<u32> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![10, 100, 500, 1_000];
    }
    for n in sizes {
        let mut d = network(n);
        let mut logged = d.summary();
        let (mut last, mut known) = (None, Vec::new());
        handle(&d, &mut last, &mut known, &mut logged);
        let mut gone = None;
        let mut samples = time_runs(20, 400, || {
            // Alternately a container leaves and comes back.
            match gone.take() {
                None => gone = d.endpoints.pop(),
                Some(e) => d.endpoints.push(e),
            }
            let bytes = handle(&d, &mut last, &mut known, &mut logged);
            std::hint::black_box(bytes);
        });
        let p90 = {
            samples.sort();
            samples[samples.len() * 9 / 10]
        };
        println!(
            "{n:>10} | {:>10.0} {:>7.0}",
            us(median(&mut samples)),
            us(p90)
        );
    }
}
